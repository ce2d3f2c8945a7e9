'use strict';
// Deterministic generator of request spellings for the gate-classified
// endpoints. A spelling is one whole HTTP/1.x request as raw bytes (a JS
// string whose char codes are the bytes, 0–255). Each starts from an endpoint
// and gets 0–5 random mutations; every mutation class is tagged so the Rust
// side can report which classes the routers route and which only the gate
// intercepts.

/** JavaScript `\s`: what `/^[\s\/]+|[\s\/]+$/g` (connect-route) strips. */
const JS_WHITESPACE = [
  0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x20, 0xa0, 0x1680, 0x2000, 0x2001, 0x2002, 0x2003, 0x2004, 0x2005,
  0x2006, 0x2007, 0x2008, 0x2009, 0x200a, 0x2028, 0x2029, 0x202f, 0x205f, 0x3000, 0xfeff,
];
/** Look-alikes that are not `\s` (controls for the test, not expected routed). */
const NOT_JS_WHITESPACE = [0x00, 0x85, 0x180e, 0x200b, 0x1f];

const ENDPOINTS = [
  // [name, path segments, default methods, weight, websocket?]
  ['sessions_logout', ['api', 'v1', 'sessions', 'logout'], ['POST'], 48, false],
  ['login', ['api', 'v1', 'login'], ['POST'], 6, false],
  ['user_logout', ['api', 'v1', 'logout'], ['POST', 'GET'], 6, false],
  ['device_api:list', ['api', 'v1', 'sessions', 'list'], ['GET'], 2, false],
  ['device_api:info', ['api', 'v1', 'sessions', 'info'], ['GET'], 2, false],
  ['device_api:logout.me', ['api', 'v1', 'sessions', 'logout.me'], ['POST'], 3, false],
  ['device_api:list.all', ['api', 'v1', 'sessions', 'list.all'], ['GET'], 2, false],
  ['device_api:info.admin', ['api', 'v1', 'sessions', 'info.admin'], ['GET'], 2, false],
  ['websocket_raw', ['websocket'], ['GET'], 5, true],
  ['websocket_raw', ['sockjs', 'websocket'], ['GET'], 5, true],
  ['websocket_sockjs', ['sockjs', '123', 'abcdefgh', 'websocket'], ['GET'], 5, true],
  ['sockjs_send', ['sockjs', '123', 'abcdefgh', 'xhr_send'], ['POST'], 7, false],
  ['sockjs_send', ['sockjs', '123', 'abcdefgh', 'jsonp_send'], ['POST'], 5, false],
];
const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'OPTIONS', 'PATCH'];
const OVERRIDE_HEADERS = ['X-HTTP-Method-Override', 'X-HTTP-Method', 'X-Method-Override'];

/** mulberry32: small, fast, deterministic. */
function prng(seed) {
  let a = seed >>> 0;
  const next = function () {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return {
    next,
    int: (n) => Math.floor(next() * n),
    pick: (xs) => xs[Math.floor(next() * xs.length)],
    chance: (p) => next() < p,
    weighted: (pairs) => {
      const total = pairs.reduce((s, [, w]) => s + w, 0);
      let r = next() * total;
      for (const [v, w] of pairs) {
        if ((r -= w) < 0) return v;
      }
      return pairs[pairs.length - 1][0];
    },
  };
}

// --- byte helpers -----------------------------------------------------------

function utf8Bytes(codePoint) {
  return Array.from(Buffer.from(String.fromCodePoint(codePoint), 'utf8'));
}
const hex = (b, lower) => {
  const h = b.toString(16).padStart(2, '0');
  return lower ? h : h.toUpperCase();
};
const bytesRaw = (bytes) => String.fromCharCode(...bytes);
const bytesPct = (bytes, lower) => bytes.map((b) => '%' + hex(b, lower)).join('');
const bytesPct2 = (bytes) => bytes.map((b) => '%25' + hex(b, false)).join('');

/** One character, spelled `kind`; returns [bytes-string, tag] or null if n/a. */
function spellChar(cp, kind, rnd) {
  switch (kind) {
    case 'raw':
      return bytesRaw(utf8Bytes(cp));
    case 'pct':
      return bytesPct(utf8Bytes(cp), false);
    case 'pctl':
      return bytesPct(utf8Bytes(cp), true);
    case 'pct2':
      return bytesPct2(utf8Bytes(cp));
    case 'pct-mixed': {
      // Some bytes encoded, some raw (UTF-8 split across forms).
      const bytes = utf8Bytes(cp);
      return bytes.map((b) => (rnd.chance(0.5) ? '%' + hex(b, false) : String.fromCharCode(b))).join('');
    }
    case 'overlong2':
      if (cp > 0x7f) return null;
      return bytesPct([0xc0 | (cp >> 6), 0x80 | (cp & 0x3f)], false);
    case 'overlong3':
      if (cp > 0x7f) return null;
      return bytesPct([0xe0, 0x80 | (cp >> 6), 0x80 | (cp & 0x3f)], false);
    case 'fullwidth-raw':
      if (cp < 0x21 || cp > 0x7e) return null;
      return bytesRaw(utf8Bytes(0xff01 + cp - 0x21));
    case 'fullwidth-pct':
      if (cp < 0x21 || cp > 0x7e) return null;
      return bytesPct(utf8Bytes(0xff01 + cp - 0x21), false);
    case 'u-escape':
      return '%u' + cp.toString(16).padStart(4, '0');
    default:
      return null;
  }
}
const CHAR_KINDS = [
  ['pct', 5],
  ['pctl', 2],
  ['pct2', 3],
  ['pct-mixed', 1],
  ['overlong2', 2],
  ['overlong3', 1],
  ['fullwidth-raw', 1],
  ['fullwidth-pct', 1],
  ['u-escape', 1],
];
const WS_KINDS = [
  ['raw', 2],
  ['pct', 5],
  ['pctl', 1],
  ['pct2', 2],
];

// --- the spelling model ------------------------------------------------------

/**
 * A target under construction: `segments` are arrays of units (each unit the
 * spelling of one character), `seps[i]` joins segment i and i+1.
 */
function baseTarget(segments) {
  return {
    scheme: '',
    lead: '/',
    segments: segments.map((s) => Array.from(s).map((c) => ({ ch: c, text: c }))),
    seps: segments.slice(1).map(() => '/'),
    trail: '',
    query: '',
  };
}

function assemble(t) {
  let out = t.scheme + t.lead;
  t.segments.forEach((units, i) => {
    out += units.map((u) => u.text).join('');
    if (i < t.seps.length) out += t.seps[i];
  });
  return out + t.trail + t.query;
}

const MUTATIONS = [
  // [name, weight, fn(t, spelling, rnd) -> tag or null]
  [
    'case',
    10,
    (t, s, rnd) => {
      const seg = rnd.pick(t.segments);
      const mode = rnd.pick(['upper', 'capital', 'random', 'one']);
      const letters = seg.filter((u) => u.ch !== null && /^[a-z]$/i.test(u.ch) && u.text === u.ch);
      if (letters.length === 0) return null;
      const flip = (u) => {
        u.ch = u.ch === u.ch.toUpperCase() ? u.ch.toLowerCase() : u.ch.toUpperCase();
        u.text = u.ch;
      };
      if (mode === 'upper') letters.forEach((u) => ((u.ch = u.ch.toUpperCase()), (u.text = u.ch)));
      else if (mode === 'capital') flip(letters[0]);
      else if (mode === 'one') flip(rnd.pick(letters));
      else letters.forEach((u) => rnd.chance(0.5) && flip(u));
      return 'case';
    },
  ],
  [
    'encode-char',
    10,
    (t, s, rnd) => {
      const seg = rnd.pick(t.segments);
      const chars = seg.filter((u) => u.ch !== null);
      if (chars.length === 0) return null;
      const u = rnd.pick(chars);
      const kind = rnd.weighted(CHAR_KINDS);
      const text = spellChar(u.ch.codePointAt(0), kind, rnd);
      if (text === null) return null;
      u.text = text;
      return 'enc:' + kind;
    },
  ],
  [
    'encode-segment',
    3,
    (t, s, rnd) => {
      const seg = rnd.pick(t.segments);
      const kind = rnd.pick(['pct', 'pct2']);
      seg.forEach((u) => u.ch !== null && (u.text = spellChar(u.ch.codePointAt(0), kind, rnd)));
      return 'enc-seg:' + kind;
    },
  ],
  [
    'lead-slashes',
    8,
    (t, s, rnd) => {
      t.lead = '/'.repeat(2 + rnd.int(3));
      return 'lead-slashes';
    },
  ],
  [
    'whitespace-glued',
    14,
    (t, s, rnd) => {
      const js = rnd.chance(0.85);
      const cp = rnd.pick(js ? JS_WHITESPACE : NOT_JS_WHITESPACE);
      const kind = rnd.weighted(WS_KINDS);
      const text = spellChar(cp, kind, rnd);
      const count = rnd.chance(0.2) ? 2 : 1;
      const i = rnd.chance(0.5) ? 0 : rnd.int(t.segments.length);
      const seg = t.segments[i];
      const front = rnd.chance(0.6);
      const units = Array.from({ length: count }, () => ({ ch: null, text }));
      if (front) seg.unshift(...units);
      else seg.push(...units);
      const where = i === 0 && front ? 'lead' : front ? 'front' : i === t.segments.length - 1 ? 'trail' : 'back';
      return (js ? 'ws-' : 'nonws-') + where + ':' + kind;
    },
  ],
  [
    'whitespace-segments',
    5,
    (t, s, rnd) => {
      // `/%20/%20api/...`: whole segments of whitespace before the path.
      const n = 1 + rnd.int(2);
      let lead = '/';
      for (let i = 0; i < n; i++) {
        const cp = rnd.pick(JS_WHITESPACE);
        lead += spellChar(cp, rnd.weighted(WS_KINDS), rnd) + '/';
      }
      t.lead = lead;
      return 'ws-segments';
    },
  ],
  [
    'separator',
    8,
    (t, s, rnd) => {
      if (t.seps.length === 0) return null;
      const i = rnd.int(t.seps.length);
      const kind = rnd.pick([
        '//',
        '///',
        '\\',
        '%2F',
        '%2f',
        '%5C',
        '%252F',
        '/./',
        '/%2e/',
        '/zz/../',
        '/zz/%2e%2e/',
        '/zz/.%2E/',
        '/zz%2F..%2F',
        '/zz/..\\',
      ]);
      t.seps[i] = kind;
      return 'sep:' + kind;
    },
  ],
  [
    'trailing',
    8,
    (t, s, rnd) => {
      const kind = rnd.pick(['/', '//', '/.', '/zz/..', '%2F', '%00', '.', '%2e', ';', '/;x', '\\', '%5C']);
      t.trail += kind;
      return 'trail:' + kind;
    },
  ],
  [
    'params',
    4,
    (t, s, rnd) => {
      const seg = rnd.pick(t.segments);
      const kind = rnd.pick([';x=1', ';', '%3Bx', ';jsessionid=1']);
      seg.push({ ch: null, text: kind });
      return 'params:' + kind;
    },
  ],
  [
    'query',
    6,
    (t, s, rnd) => {
      const kind = rnd.pick(['?x=1', '?', '#frag', '?a=b#c', '%3Fx=1', '%23x', '?x=%2F..', '?/../x']);
      t.query = kind;
      return 'query:' + kind;
    },
  ],
  [
    'dot-lead',
    4,
    (t, s, rnd) => {
      const kind = rnd.pick(['/..', '/.', '/zz/..', '/%2e%2e', '/x/%2E%2E']);
      t.lead = kind + '/';
      return 'dot-lead:' + kind;
    },
  ],
  [
    'absolute-form',
    4,
    (t, s, rnd) => {
      t.scheme = rnd.pick(['http://chat.example', 'HTTP://chat.example:3000', 'https://chat.example']);
      return 'absolute';
    },
  ],
  [
    'method',
    5,
    (t, s, rnd) => {
      s.method = rnd.pick(METHODS);
      return 'method:' + s.method;
    },
  ],
  [
    'override',
    3,
    (t, s, rnd) => {
      s.method = rnd.pick(['GET', 'PUT', 'DELETE', 'PATCH']);
      if (rnd.chance(0.7)) {
        s.headers.push([rnd.pick(OVERRIDE_HEADERS), rnd.pick(['POST', 'post'])]);
        return 'override:header';
      }
      t.query = (t.query.startsWith('?') ? t.query + '&' : '?') + '_method=POST';
      return 'override:query';
    },
  ],
  [
    'http1.0',
    3,
    (t, s) => {
      s.version = 'HTTP/1.0';
      return 'http1.0';
    },
  ],
  [
    'raw-byte',
    2,
    (t, s, rnd) => {
      const seg = rnd.pick(t.segments);
      const b = rnd.pick([0x80, 0xa0, 0xc0, 0xff, 0x7f, 0x01, 0x09]);
      seg.push({ ch: null, text: String.fromCharCode(b) });
      return 'raw-byte:' + b.toString(16);
    },
  ],
];

/** The request bytes for a spelling. */
function render(s) {
  const lines = [`${s.method} ${s.target} ${s.version}`, 'Host: chat.example'];
  for (const [k, v] of s.headers) lines.push(`${k}: ${v}`);
  if (s.websocket) {
    lines.push('Connection: Upgrade', 'Upgrade: websocket', 'Sec-WebSocket-Version: 13');
    lines.push('Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==');
    return lines.join('\r\n') + '\r\n\r\n';
  }
  if (s.endpoint === 'sockjs_send') {
    const body = '["x"]';
    lines.push('Content-Type: text/plain', `Content-Length: ${body.length}`);
    return lines.join('\r\n') + '\r\n\r\n' + body;
  }
  lines.push('Content-Type: application/json', 'Content-Length: 2');
  return lines.join('\r\n') + '\r\n\r\n{}';
}

function spell(endpoint, mutations, rnd) {
  const [name, segments, methods, , websocket] = endpoint;
  const t = baseTarget(segments);
  const s = {
    endpoint: name,
    method: rnd.pick(methods),
    version: 'HTTP/1.1',
    headers: [],
    websocket,
    tags: [],
  };
  for (let i = 0; i < mutations; i++) {
    const [, , fn] = rnd.weighted(MUTATIONS.map((m) => [m, m[1]]));
    const tag = fn(t, s, rnd);
    if (tag !== null && !s.tags.includes(tag)) s.tags.push(tag);
  }
  s.target = assemble(t);
  return s;
}

/** The issue's and SPEC §12's examples, always in the set. */
function fixedSpellings() {
  const logout = ENDPOINTS[0];
  const out = [];
  const add = (target, tags, method = 'POST', extra = {}) =>
    out.push({
      endpoint: 'sessions_logout',
      method,
      version: 'HTTP/1.1',
      headers: [],
      websocket: false,
      tags: ['fixed', ...tags],
      target,
      ...extra,
    });
  const p = '/api/v1/sessions/logout';
  add('/' + p, ['lead-slashes']);
  add('//' + p, ['lead-slashes']);
  add('/' + p + '?x=1', ['lead-slashes', 'query:?x=1']);
  add('http://chat.example/' + p, ['lead-slashes', 'absolute']);
  for (const cp of JS_WHITESPACE) {
    add('/' + bytesPct(utf8Bytes(cp)) + p.slice(1), ['ws-lead:pct']);
    add(p + bytesPct(utf8Bytes(cp)), ['ws-trail:pct']);
  }
  add('/%20/%20' + p.slice(1), ['ws-segments']);
  add('/API/v1/sessions/logout', ['case']);
  add('/api/v1/sessions/Logout', ['case']);
  add('/api/V1/SESSIONS/LOGOUT/', ['case', 'trail:/']);
  add('/api/v1/x/../sessions/logout', ['sep:/zz/../']);
  add('/api/v1/sessions/logou%74', ['enc:pct']);
  add('/api\\v1\\sessions\\logout', ['sep:\\']);
  add(p, ['plain']);
  add(p, ['plain', 'http1.0'], 'POST', { version: 'HTTP/1.0' });

  // Systematic single mutations of the logout path: every character in every
  // spelling kind, every JS whitespace (and look-alike) glued to the front and
  // back of every segment, raw and encoded, every segment upper-cased.
  const segments = logout[1];
  segments.forEach((seg, si) => {
    const spelled = (text) => '/' + segments.map((x, k) => (k === si ? text : x)).join('/');
    Array.from(seg).forEach((ch, ci) => {
      for (const [kind] of CHAR_KINDS) {
        if (kind === 'pct-mixed') continue;
        const text = spellChar(ch.codePointAt(0), kind, null);
        if (text === null) continue;
        add(spelled(seg.slice(0, ci) + text + seg.slice(ci + 1)), ['enc:' + kind]);
      }
    });
    for (const cp of [...JS_WHITESPACE, ...NOT_JS_WHITESPACE]) {
      const js = JS_WHITESPACE.includes(cp) ? 'ws-' : 'nonws-';
      for (const [kind] of WS_KINDS) {
        const text = spellChar(cp, kind, null);
        const front = si === 0 ? 'lead' : 'front';
        const back = si === segments.length - 1 ? 'trail' : 'back';
        add(spelled(text + seg), [js + front + ':' + kind]);
        add(spelled(seg + text), [js + back + ':' + kind]);
      }
    }
    add(spelled(seg.toUpperCase()), ['case']);
  });
  return out;
}

/**
 * `count` spellings for `seed`: the fixed examples first, then random ones.
 * Yields objects with `raw` (the request bytes) added.
 */
function* spellings(count, seed) {
  const rnd = prng(seed);
  let n = 0;
  for (const s of fixedSpellings()) {
    if (n++ >= count) return;
    s.raw = render(s);
    yield s;
  }
  const endpoints = ENDPOINTS.map((e) => [e, e[3]]);
  const k = [
    [0, 1],
    [1, 5],
    [2, 5],
    [3, 3],
    [4, 2],
    [5, 1],
  ];
  while (n++ < count) {
    const s = spell(rnd.weighted(endpoints), rnd.weighted(k), rnd);
    s.raw = render(s);
    yield s;
  }
}

module.exports = { spellings, JS_WHITESPACE };
