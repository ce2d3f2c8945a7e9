// Real DDP client libraries, driven through the gate by tests/clients.rs.
//
// Each scenario logs in with a revoked resume token, then, on the same
// connection, with a live one. Meteor's rules (SPEC §11): the first login's
// callback fires with the server's 403 error, the call completes with
// `updated`, the connection stays open and the second login succeeds.
//
// Usage: node ddp_clients.js HOST:PORT USER_ID DEAD_TOKEN LIVE_TOKEN
// Prints one JSON line per scenario; exits non-zero if any failed.
'use strict';

const DDPClient = require('ddp');
const SockJS = require('sockjs-client');

const [gate, userId, deadToken, liveToken] = process.argv.slice(2);
const LOGGED_OUT = "You've been logged out by the server. Please log in again.";
const TIMEOUT_MS = 8000;

function withTimeout(name, promise) {
  return Promise.race([
    promise,
    new Promise((_, reject) =>
      setTimeout(() => reject(new Error(`${name}: timed out`)), TIMEOUT_MS),
    ),
  ]);
}

// The `ddp` package (node-ddp): callback on `result`, updatedCallback on
// `updated`. The second login is sent only once the first has completed,
// as Meteor's client does for `login` (wait: true).
function nodeDdp(path) {
  return new Promise((resolve, reject) => {
    const client = new DDPClient({
      url: `ws://${gate}${path}`,
      autoReconnect: false,
      maintainCollections: false,
    });
    const seen = { scenario: `ddp ${path}` };
    client.connect((error) => {
      if (error) {
        reject(error);
        return;
      }
      client.call(
        'login',
        [{ resume: deadToken }],
        (err, result) => {
          seen.revokedError = err || null;
          seen.revokedResult = result || null;
        },
        () => {
          seen.revokedUpdated = true;
          client.call(
            'login',
            [{ resume: liveToken }],
            (err, result) => {
              seen.liveError = err || null;
              seen.liveResult = result || null;
            },
            () => {
              seen.liveUpdated = true;
              client.close();
              resolve(seen);
            },
          );
        },
      );
    });
  });
}

// sockjs-client, the transport library Meteor's own client uses, with DDP on
// top: over its websocket transport or its xhr-polling transport (where
// messages go up in `xhr_send` bodies and answers come back on the poll).
function sockjsDdp(transport) {
  return new Promise((resolve, reject) => {
    const sock = new SockJS(`http://${gate}/sockjs`, null, { transports: [transport] });
    const seen = { scenario: `sockjs-client ${transport}` };
    const send = (message) => sock.send(JSON.stringify(message));
    sock.onopen = () => send({ msg: 'connect', version: '1', support: ['1', 'pre2', 'pre1'] });
    sock.onclose = (event) => {
      if (!seen.liveUpdated) {
        reject(new Error(`${seen.scenario}: closed early (${event.code} ${event.reason})`));
      }
    };
    sock.onmessage = (event) => {
      const message = JSON.parse(event.data);
      if (message.msg === 'connected') {
        send({ msg: 'method', method: 'login', params: [{ resume: deadToken }], id: '1' });
      } else if (message.msg === 'result' && message.id === '1') {
        seen.revokedError = message.error || null;
        seen.revokedResult = message.result || null;
      } else if (message.msg === 'updated' && message.methods.includes('1')) {
        seen.revokedUpdated = true;
        send({ msg: 'method', method: 'login', params: [{ resume: liveToken }], id: '2' });
      } else if (message.msg === 'result' && message.id === '2') {
        seen.liveError = message.error || null;
        seen.liveResult = message.result || null;
      } else if (message.msg === 'updated' && message.methods.includes('2')) {
        seen.liveUpdated = true;
        seen.transport = sock.transport;
        resolve(seen);
        sock.close();
      }
    };
  });
}

function check(seen) {
  const problems = [];
  const error = seen.revokedError || {};
  if (error.error !== 403 || error.reason !== LOGGED_OUT) {
    problems.push(`revoked login: expected Meteor's 403, got ${JSON.stringify(seen.revokedError)}`);
  }
  if (seen.revokedResult) problems.push('revoked login returned a result');
  if (!seen.revokedUpdated) problems.push('revoked login never completed (no updated)');
  const result = seen.liveResult || {};
  if (seen.liveError || result.id !== userId || result.token !== liveToken) {
    problems.push(`second login failed: ${JSON.stringify(seen.liveError || seen.liveResult)}`);
  }
  if (!seen.liveUpdated) problems.push('second login never completed (no updated)');
  return problems;
}

async function main() {
  const scenarios = [
    ['ddp /websocket', () => nodeDdp('/websocket')],
    ['ddp /sockjs/websocket', () => nodeDdp('/sockjs/websocket')],
    ['sockjs-client websocket', () => sockjsDdp('websocket')],
    ['sockjs-client xhr-polling', () => sockjsDdp('xhr-polling')],
  ];
  let failed = false;
  for (const [name, run] of scenarios) {
    let seen;
    let problems;
    try {
      seen = await withTimeout(name, run());
      problems = check(seen);
    } catch (e) {
      seen = { scenario: name };
      problems = [String(e && e.message ? e.message : e)];
    }
    failed = failed || problems.length > 0;
    console.log(JSON.stringify({ scenario: name, ok: problems.length === 0, problems, transport: seen.transport }));
  }
  process.exit(failed ? 1 : 0);
}

main();
