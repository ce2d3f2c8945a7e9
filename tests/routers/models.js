'use strict';
// Rocket.Chat's HTTP routing stacks, rebuilt from the npm packages it pins and
// mounted the way Rocket.Chat and Meteor mount them. Each model is a real
// `http.Server`: a request is fed to it as raw bytes through an in-memory
// socket, so Node's own HTTP parser (llhttp) reads the request line exactly as
// it would on the wire, and the real routers decide which handler it reaches.
// Our code only marks the handlers (sets `reached`) and ends the response.
//
// Sources read (see SECURITY.md "Routing matrix" for commits):
// - Meteor packages/webapp/webapp_server.js: the middleware order
//   (rawConnectHandlers → compress → cookies → `RoutePolicy.isValidUrl` →
//   query → path prefix → static files → meteorInternalHandlers →
//   connectHandlers); Meteor 2.x builds it with connect 3.7.0, Meteor 3.x with
//   express 4.21.1 (`createExpressApp`).
// - Meteor packages/routepolicy/routepolicy.js: `isValidUrl(url)` is
//   `url.startsWith('/')`; anything else gets 400 "Not a proxy".
// - Meteor packages/ddp-server/stream_server.js: sockjs 0.3.24 with
//   prefix `/sockjs`, installed on the http server before every other
//   listener, then `_redirectWebsocketEndpoint` rewrites `/websocket` and
//   `/websocket/` to `/sockjs/websocket` (legacy `url.parse` pathname).
// - Rocket.Chat apps/meteor/packages/meteor-restivus (5.x–7.3): connect
//   2.30.2 `urlencoded`/`json`/`query`, then connect-route 0.1.5 on
//   `WebApp.connectHandlers`; routes are `'/' + 'api/' + 'v1/' + path`.
// - Rocket.Chat apps/meteor/app/api/server/router.ts + api.ts (7.4–7.5):
//   `WebApp.rawConnectHandlers.use(API.api.…router)`, express `Router()`
//   `.use('/api', inner)`, inner `.use(v1.router)`, v1 `.use('/v1', inner)`,
//   inner `.post('/sessions/logout')`.
// - Rocket.Chat packages/http-router (7.6+): the same mount, but the `/api`
//   router is `express.Router().use('/api', honoAdapterForExpress(hono))`
//   and the adapter calls `hono.request(req.originalUrl, …)`; routes are
//   `hono.route('/api', api)`, `api.route('/v1', v1)`, `v1.post('/sessions/logout')`.
// - Rocket.Chat ApiClass `_initAuth`: `login` (POST) and `logout` (GET and
//   POST) in every era; ee/server/api/sessions.ts: the device endpoints.

const http = require('http');
const { Duplex } = require('stream');
const nodeUrl = require('url');

// Every handler the gate classifies, with the methods Rocket.Chat registers.
// Names are the gate's route labels (device endpoints and websocket flavours
// carry a suffix the Rust side maps to the enum variant).
const REST_ROUTES = [
  ['POST', 'sessions/logout', 'sessions_logout'],
  ['POST', 'login', 'login'],
  ['GET', 'logout', 'user_logout'],
  ['POST', 'logout', 'user_logout'],
  ['GET', 'sessions/list', 'device_api:list'],
  ['GET', 'sessions/info', 'device_api:info'],
  ['POST', 'sessions/logout.me', 'device_api:logout.me'],
  ['GET', 'sessions/list.all', 'device_api:list.all'],
  ['GET', 'sessions/info.admin', 'device_api:info.admin'],
];

/**
 * A handler was reached: record it on the in-memory socket's current request
 * (see `route`) and answer.
 */
function mark(name, socket, res) {
  const state = socket && socket.modelState;
  if (state && state.reached === null) state.reached = name;
  if (res && !res.headersSent && typeof res.writeHead === 'function') {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end('model handler ' + name);
  }
}

// --- Meteor WebApp (webapp_server.js runWebAppServer) --------------------

/**
 * Meteor's server: `raw` gets the handlers added to WebApp.rawConnectHandlers,
 * `pkg` those added to WebApp.connectHandlers. `makeApp` is connect 3.7.0
 * (Meteor 2) or express 4.21.1 (Meteor 3).
 */
function meteorWebApp(makeApp, raw, pkg) {
  const app = makeApp();
  const rawConnectHandlers = makeApp();
  raw.forEach((h) => rawConnectHandlers.use(h));
  app.use(rawConnectHandlers);
  // compress and cookieParser do not look at the path: left out.
  // "We're not a proxy": RoutePolicy.isValidUrl is url.startsWith('/').
  app.use(function (req, res, next) {
    if (req.url.startsWith('/')) {
      next();
      return;
    }
    res.writeHead(400);
    res.write('Not a proxy');
    res.end();
  });
  // Query parsing, the path-prefix stage (ROOT_URL_PATH_PREFIX unset: it
  // only calls next()) and static files (decodeURIComponent in a try, then
  // next() for anything that is not a bundled file) do not route: left out.
  const packageAndAppHandlers = makeApp();
  pkg.forEach((h) => packageAndAppHandlers.use(h));
  app.use(packageAndAppHandlers);
  // Meteor's catch-all (the app's HTML or 404): not a handler the gate cares about.
  app.use(function (req, res) {
    res.writeHead(404);
    res.end('meteor catch-all');
  });
  return app;
}

function express3App(express) {
  return function () {
    const app = express();
    app.set('x-powered-by', false);
    app.set('etag', false);
    return app;
  };
}

// --- Meteor's stream server (ddp-server/stream_server.js) ----------------

let sockjsPatched = false;

function installStreamServer(httpServer) {
  const sockjs = require('sockjs');
  const server = sockjs.createServer({
    prefix: '/sockjs',
    log: function () {},
    heartbeat_delay: 45000,
    disconnect_delay: 60 * 1000,
    disable_cors: false,
    jsessionid: false,
  });
  if (!sockjsPatched) {
    // Mark the transport handlers: sockjs's own dispatcher decides whether
    // they are reached; their bodies (sessions, faye-websocket) are not needed.
    const app = Object.getPrototypeOf(server.listener().app);
    app.raw_websocket = function (req, res) {
      mark('websocket_raw', req.socket, res);
    };
    app.sockjs_websocket = function (req, res) {
      mark('websocket_sockjs', req.socket, res);
    };
    app.xhr_send = function (req, res) {
      mark('sockjs_send', req.socket, res);
    };
    app.jsonp_send = function (req, res) {
      mark('sockjs_send', req.socket, res);
    };
    sockjsPatched = true;
  }
  server.installHandlers(httpServer);
  // _redirectWebsocketEndpoint (ROOT_URL_PATH_PREFIX unset).
  ['request', 'upgrade'].forEach((event) => {
    const old = httpServer.listeners(event).slice(0);
    httpServer.removeAllListeners(event);
    httpServer.addListener(event, function (request) {
      const args = arguments;
      const parsedUrl = nodeUrl.parse(request.url);
      if (parsedUrl.pathname === '/websocket' || parsedUrl.pathname === '/websocket/') {
        parsedUrl.pathname = '/sockjs/websocket';
        request.url = nodeUrl.format(parsedUrl);
      }
      old.forEach((listener) => listener.apply(httpServer, args));
    });
  });
}

function makeServer(app) {
  const server = http.createServer(app);
  // Meteor adds no 'upgrade' listener of its own: an upgrade sockjs does not
  // take is left hanging there. Closing it here says the same (not routed)
  // without waiting for a timeout.
  server.on('upgrade', function (req, socket) {
    socket.destroy();
  });
  installStreamServer(server);
  // First of all listeners: tell route() when the answer is complete (the
  // in-memory client never half-closes, which Node would take as an abort).
  server.prependListener('request', function (req, res) {
    const state = req.socket.modelState;
    res.on('finish', () => state && state.done());
  });
  return server;
}

// --- Rocket.Chat 5.x – 7.3: Restivus on connect-route ----------------------

function restivusHandlers() {
  const connect2 = require('connect-2.30.2');
  const connectRoute = require('connect-route');
  const handlers = [
    connect2.urlencoded({ limit: '50mb' }),
    connect2.json({ limit: '50mb' }),
    connect2.query(),
  ];
  handlers.push(
    connectRoute(function (router) {
      for (const [method, path, name] of REST_ROUTES) {
        // Restivus: apiPath 'api/' + version 'v1/' + route; JsonRoutes.add
        // prepends the slash.
        router[method.toLowerCase()]('/api/v1/' + path, function (req, res) {
          mark(name, req.socket, res);
        });
      }
    }),
  );
  return handlers;
}

// connect 2.30.2's urlencoded/json/query wrappers print deprecation notices.
process.env.NO_DEPRECATION = process.env.NO_DEPRECATION || 'connect';

function restivusEra(makeApp) {
  return makeServer(meteorWebApp(makeApp, [], restivusHandlers()));
}

// --- Rocket.Chat 7.4 – 7.5: express Router nesting ------------------------

function expressRouterEra(meteorExpress, rcExpress) {
  const v1Inner = rcExpress.Router();
  for (const [method, path, name] of REST_ROUTES) {
    v1Inner[method.toLowerCase()]('/' + path, function (req, res) {
      mark(name, req.socket, res);
    });
  }
  const v1 = rcExpress.Router();
  v1.use('/v1', v1Inner);
  const apiInner = rcExpress.Router();
  // remoteAddress, cors, logger, metrics, tracer middlewares: they call next().
  apiInner.use(function (req, res, next) {
    next();
  });
  apiInner.use(v1);
  const api = rcExpress.Router();
  api.use('/api', apiInner);
  return makeServer(meteorWebApp(express3App(meteorExpress), [api], []));
}

// --- Rocket.Chat 7.6+: hono behind express --------------------------------

function honoEra(meteorExpress, rcExpress, Hono) {
  const v1 = new Hono();
  for (const [method, path, name] of REST_ROUTES) {
    v1[method.toLowerCase()]('/' + path, function (c) {
      mark(name, c.env.socket, null);
      return c.body('model handler ' + name);
    });
  }
  const api = new Hono();
  api.route('/v1', v1);
  const root = new Hono();
  root.route('/api', api).options('*', (c) => c.body('OK'));
  // What honoAdapterForExpress does for routing: hand hono the original URL.
  const adapter = function (req, res) {
    let answer;
    try {
      answer = root.request(
        req.originalUrl,
        { method: req.method, headers: new Headers() },
        { socket: req.socket },
      );
    } catch (e) {
      answer = Promise.reject(e);
    }
    Promise.resolve(answer).then(
      (r) => {
        res.writeHead(r.status);
        res.end();
      },
      () => {
        res.writeHead(500);
        res.end();
      },
    );
  };
  const router = rcExpress.Router();
  router.use('/api', adapter);
  return makeServer(meteorWebApp(express3App(meteorExpress), [router], []));
}

// --- the models ------------------------------------------------------------

function buildModels() {
  const connect3 = require('connect-3.7.0');
  const express4211 = require('express-4.21.1');
  const express4212 = require('express-4.21.2');
  const express4223 = require('express-4.22.3');
  const hono4619 = require('hono-4.6.19').Hono;
  const hono41323 = require('hono-4.13.23').Hono;
  return [
    { name: 'rc5-6:meteor2-connect3.7.0+connect-route0.1.5', server: restivusEra(connect3) },
    {
      name: 'rc7.0-7.3:meteor3-express4.21.1+connect-route0.1.5',
      server: restivusEra(express3App(express4211)),
    },
    { name: 'rc7.4-7.5:express4.21.2-router', server: expressRouterEra(express4211, express4212) },
    { name: 'rc7.4-7.5:express4.22.3-router', server: expressRouterEra(express4211, express4223) },
    {
      name: 'rc7.6+:express4.21.2+hono4.6.19',
      server: honoEra(express4211, express4212, hono4619),
    },
    {
      name: 'rc7.6+:express4.22.3+hono4.13.23',
      server: honoEra(express4211, express4223, hono41323),
    },
  ];
}

/**
 * Feed `raw` (a Buffer holding one whole request) to `server` over an
 * in-memory socket; resolve with the handler reached (or null) once the
 * answer is complete, the connection closes, or `patienceMs` passes.
 * The socket is kept (keep-alive) for the next request while Node keeps it.
 */
function route(server, raw, patienceMs) {
  return new Promise((resolve) => {
    let settled = false;
    let timedOut = false;
    const state = {
      reached: null,
      done: () => settle(false),
    };
    let sock = server.modelSocket;
    if (!sock || sock.destroyed) {
      sock = newSocket();
      server.modelSocket = sock;
      server.emit('connection', sock);
    }
    sock.modelState = state;
    sock.onEnded = () => settle(true);
    const timer = setTimeout(() => {
      timedOut = true;
      settle(true);
    }, patienceMs);
    function settle(dropSocket) {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      sock.modelState = null;
      sock.onEnded = null;
      if (dropSocket || timedOut) {
        if (server.modelSocket === sock) server.modelSocket = null;
        setImmediate(() => sock.destroy());
      }
      resolve({ reached: state.reached, slow: timedOut });
    }
    sock.push(raw);
  });
}

function newSocket() {
  const sock = new Duplex({
    read() {},
    write(chunk, enc, cb) {
      cb();
    },
    final(cb) {
      if (sock.onEnded) sock.onEnded();
      cb();
    },
  });
  sock.remoteAddress = '127.0.0.1';
  sock.remotePort = 40000;
  sock.localAddress = '127.0.0.1';
  sock.localPort = 3000;
  sock.encrypted = false;
  sock.setTimeout = () => sock;
  sock.setNoDelay = () => sock;
  sock.setKeepAlive = () => sock;
  sock.ref = () => sock;
  sock.unref = () => sock;
  const ended = () => sock.onEnded && sock.onEnded();
  sock.on('close', ended);
  sock.on('error', ended);
  return sock;
}

module.exports = { buildModels, route, REST_ROUTES };
