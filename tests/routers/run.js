#!/usr/bin/env node
'use strict';
// Route generated spellings through every model and print one JSON line per
// spelling, then a summary line. Used by tests/routers.rs; runnable alone:
//
//   node tests/routers/run.js --count 50000 --seed 1 [--jobs 2] > spellings.jsonl
//
// Each line: {"i","endpoint","tags","raw","routes":{model: handler}} where
// `raw` holds the request bytes as code points 0–255 and `routes` names only
// the models that reached one of the handlers the gate classifies.
// The last line: {"summary":{generated, seed, routed_any, routed_by_model, slow, node, ms}}.
// Worker threads split the spellings (i % jobs); the output order is `i`.

// finalhandler (connect, express) prints every routing error unless NODE_ENV is test.
process.env.NODE_ENV = 'test';

const os = require('os');
const { Worker, isMainThread, parentPort, workerData } = require('worker_threads');
const { buildModels, route } = require('./models');
const { spellings } = require('./spellings');

function arg(name, fallback) {
  const i = process.argv.indexOf(name);
  return i === -1 ? fallback : process.argv[i + 1];
}

async function worker({ count, seed, jobs, index, patience }) {
  // Routing errors (decodeURI's URIError, body-parser's charset probe) are
  // thrown and caught by the stacks for many spellings: skip the stack traces.
  Error.stackTraceLimit = 0;
  const models = buildModels();
  parentPort.postMessage({ models: models.map((m) => m.name) });
  let batch = [];
  let i = 0;
  for (const s of spellings(count, seed)) {
    if (i++ % jobs !== index) continue;
    const raw = Buffer.from(s.raw, 'latin1');
    const routes = {};
    let slow = 0;
    for (const model of models) {
      let result = await route(model.server, raw, patience);
      // A busy machine can starve the event loop past the patience: ask again
      // once on a fresh connection before calling the answer missing.
      if (result.slow) result = await route(model.server, raw, patience * 4);
      if (result.slow) slow++;
      if (result.reached !== null) routes[model.name] = result.reached;
    }
    batch.push({ i, routes, slow });
    if (batch.length >= 256) {
      parentPort.postMessage({ batch });
      batch = [];
    }
  }
  parentPort.postMessage({ batch, done: true });
}

async function main() {
  const count = Number(arg('--count', process.env.ROUTERS_SPELLINGS || '50000'));
  const seed = Number(arg('--seed', process.env.ROUTERS_SEED || '1'));
  const jobs = Number(arg('--jobs', process.env.ROUTERS_JOBS || String(Math.min(os.cpus().length, 4))));
  // A handler that is reached answers at once; only requests nobody answers
  // would run into this (none do: `slow` in the summary counts them, and
  // tests/routers.rs requires 0, since an unanswered request proves nothing).
  const patience = Number(arg('--patience-ms', '2000'));
  if (![count, seed, jobs].every(Number.isInteger) || count < 1 || jobs < 1) {
    throw new Error('usage: run.js [--count N] [--seed S] [--jobs J]');
  }
  const started = Date.now();
  const results = new Map();
  let modelNames = null;
  let slow = 0;
  const out = process.stdout;
  let buffer = '';
  // Each chunk is handed over before the next is made; the last one is
  // flushed before the process ends (no process.exit: it can cut a pipe short).
  const write = async (force) => {
    if (buffer.length === 0 || (!force && buffer.length < 1 << 16)) return;
    const chunk = buffer;
    buffer = '';
    await new Promise((resolve, reject) => out.write(chunk, (e) => (e ? reject(e) : resolve())));
  };
  const routedByModel = {};
  let routedAny = 0;
  let generated = 0;
  const gen = spellings(count, seed);
  let next = 1;
  let finished = 0;
  let failure = null;
  // Emit lines in order as their results arrive.
  const drain = async () => {
    while (results.has(next)) {
      const { routes } = results.get(next);
      results.delete(next);
      const s = gen.next().value;
      generated++;
      if (Object.keys(routes).length > 0) routedAny++;
      for (const [model, handler] of Object.entries(routes)) {
        const counts = (routedByModel[model] = routedByModel[model] || {});
        counts[handler] = (counts[handler] || 0) + 1;
      }
      buffer += JSON.stringify({ i: next, endpoint: s.endpoint, tags: s.tags, raw: s.raw, routes }) + '\n';
      next++;
      await write(false);
    }
  };
  await new Promise((resolve, reject) => {
    let chain = Promise.resolve();
    for (let index = 0; index < jobs; index++) {
      const w = new Worker(__filename, { workerData: { count, seed, jobs, index, patience } });
      w.on('message', (msg) => {
        if (msg.models) modelNames = msg.models;
        if (msg.batch) {
          for (const r of msg.batch) {
            results.set(r.i, r);
            slow += r.slow;
          }
          chain = chain.then(drain);
        }
        if (msg.done && ++finished === jobs) chain.then(resolve, reject);
      });
      w.on('error', (e) => {
        failure = e;
        reject(e);
      });
    }
  });
  if (failure) throw failure;
  for (const name of modelNames || []) routedByModel[name] = routedByModel[name] || {};
  buffer +=
    JSON.stringify({
      summary: {
        generated,
        seed,
        jobs,
        routed_any: routedAny,
        routed_by_model: routedByModel,
        slow,
        node: process.version,
        ms: Date.now() - started,
      },
    }) + '\n';
  await write(true);
}

if (isMainThread) {
  main().then(
    () => {
      process.exitCode = 0;
    },
    (e) => {
      process.stderr.write(String((e && e.stack) || e) + '\n');
      process.exitCode = 1;
      process.exit();
    },
  );
} else {
  worker(workerData).catch((e) => {
    throw e;
  });
}
