'use strict';
/*
 * examples/node/redwork-client.js against a real redworkd.
 *
 * Starts its own redis-server (free loopback port, no persistence, temp
 * folder) and bin/redworkd (channels = request, default_handler = greet,
 * claim = off), then calls them through one RedworkClient. Every wait polls
 * a condition until a deadline; the after() hook stops both processes by
 * PID (SIGTERM, bounded wait, SIGKILL).
 *
 * Needs examples/node/node_modules (cd examples/node && npm ci). Run:
 *   node --test tests/node/
 * REDWORK_ROOT is the repository root (default: two levels up from here).
 */

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');

const ROOT = path.resolve(process.env.REDWORK_ROOT || path.join(__dirname, '..', '..'));
const { RedworkClient } = require(path.join(ROOT, 'examples', 'node', 'redwork-client.js'));

const WAIT_MS = 10000; // the bound on every start-up and shutdown wait

/* ---- helpers ---------------------------------------------------------- */

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls the async PREDICATE every 20 ms until it is true, or throws at the deadline. */
async function waitFor(predicate, timeoutMs, what) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await predicate()) return;
    await sleep(20);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}

/** A free loopback port: listen on port 0, read it, close. */
function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/**
 * Sends one command to Redis on a fresh connection and resolves with the
 * first line of the answer ("+PONG", ":1", ...), or null if the server does
 * not answer within 1 s. Enough for PING, EXISTS and PUBSUB NUMPAT.
 */
function redisLine(port, ...args) {
  return new Promise((resolve) => {
    const sock = net.connect(port, '127.0.0.1');
    let data = '';
    const done = (line) => { clearTimeout(timer); sock.destroy(); resolve(line); };
    const timer = setTimeout(() => done(null), 1000);
    sock.on('error', () => done(null));
    sock.on('connect', () => {
      sock.write(`*${args.length}\r\n` +
        args.map((a) => `$${Buffer.byteLength(String(a))}\r\n${a}\r\n`).join(''));
    });
    sock.on('data', (chunk) => {
      data += chunk;
      const end = data.indexOf('\r\n');
      if (end >= 0) done(data.slice(0, end));
    });
  });
}

const exited = (child) => child.exitCode !== null || child.signalCode !== null;

/** Resolves when CHILD has exited, or with false after TIMEOUT_MS. */
function waitExit(child, timeoutMs) {
  if (exited(child)) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => { child.off('exit', onExit); resolve(false); }, timeoutMs);
    const onExit = () => { clearTimeout(timer); resolve(true); };
    child.once('exit', onExit);
  });
}

/** SIGTERM, a bounded wait, then SIGKILL. Resolves with the exit code or signal. */
async function stopProcess(child) {
  if (!child) return null;
  if (!exited(child)) {
    child.kill('SIGTERM');
    if (!(await waitExit(child, WAIT_MS))) {
      child.kill('SIGKILL');
      await waitExit(child, WAIT_MS);
    }
  }
  return child.exitCode !== null ? child.exitCode : child.signalCode;
}

const children = new Set(); // what spawnLogged() started and is still running

/** Spawns FILE with ARGS, its output appended to LOG. */
function spawnLogged(file, args, log) {
  const fd = fs.openSync(log, 'a');
  try {
    const child = spawn(file, args, { stdio: ['ignore', fd, fd] });
    child.on('error', () => {}); // ENOENT etc.: seen as an exit below
    children.add(child);
    child.once('exit', () => children.delete(child));
    return child;
  } finally {
    fs.closeSync(fd);
  }
}

/** redis-server on a free port (retried, ports race), answering PING. */
async function startRedis(dir) {
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = await freePort();
    const child = spawnLogged('redis-server', [
      '--port', String(port), '--bind', '127.0.0.1',
      '--save', '', '--appendonly', 'no', '--dir', dir,
    ], path.join(dir, 'redis.log'));
    try {
      await waitFor(async () => exited(child) || (await redisLine(port, 'PING')) === '+PONG',
        WAIT_MS, 'redis-server PING');
    } catch (err) { /* stopped and retried below */ }
    if (!exited(child) && (await redisLine(port, 'PING')) === '+PONG') return { child, port };
    await stopProcess(child);
  }
  throw new Error('could not start redis-server; see ' + path.join(dir, 'redis.log'));
}

/** bin/redworkd on PORT; resolves once its heartbeat key exists. */
async function startDaemon(dir, port, workerId) {
  const conf = path.join(dir, 'redwork.ini');
  fs.writeFileSync(conf, [
    '[redis]', 'host = 127.0.0.1', `port = ${port}`, '',
    '[worker]', `id = ${workerId}`, 'channels = request',
    `handlers_dir = ${path.join(ROOT, 'handlers')}`,
    'default_handler = greet', 'claim = off',
    // 4 threads: a sleeping request does not starve the others whatever the
    // CPU count; a queue above the 500 in flight: none is "overloaded".
    'threads = 4', 'queue_size = 4096', '',
  ].join('\n'));
  const log = path.join(dir, 'daemon.log');
  const child = spawnLogged(path.join(ROOT, 'bin', 'redworkd'), ['-c', conf], log);
  const heartbeat = `redwork:worker:${workerId}`;
  try {
    await waitFor(async () => exited(child) || (await redisLine(port, 'EXISTS', heartbeat)) === ':1',
      WAIT_MS, 'redworkd ready');
  } catch (err) {
    await stopProcess(child);
    throw err;
  }
  if (exited(child)) {
    throw new Error(`redworkd exited (${child.exitCode ?? child.signalCode}):\n` +
      fs.readFileSync(log, 'utf8'));
  }
  return child;
}

/** Resolves with the error PROMISE rejects with; fails if it resolves. */
async function rejection(promise) {
  try {
    const value = await promise;
    assert.fail(`expected a rejection, got ${JSON.stringify(value)}`);
  } catch (err) {
    if (err instanceof assert.AssertionError) throw err;
    return err;
  }
}

/* ---- setup ------------------------------------------------------------ */

let dir;
let redis;
let daemon;
let client;
const workerId = `node-test-${process.pid}`;

// Safety net: if this process ends without running after() (a signal, or
// the test runner went away), SIGKILL what it started and remove the temp
// folder, so no redis-server or redworkd outlives the test.
process.on('exit', () => {
  for (const child of children) if (!exited(child)) child.kill('SIGKILL');
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.once(signal, () => process.exit(1)); // runs the 'exit' handler
}

before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'redwork-node-'));
  redis = await startRedis(dir);
  daemon = await startDaemon(dir, redis.port, workerId);
  client = new RedworkClient({ host: '127.0.0.1', port: redis.port });
  await client.connect();
}, { timeout: 3 * WAIT_MS });

after(async () => {
  if (client) await client.close();
  await stopProcess(daemon);
  if (redis) await stopProcess(redis.child);
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
}, { timeout: 5 * WAIT_MS });

/* ---- tests ------------------------------------------------------------ */

test('greet: the seed request gets "Hello, Alice!"', { timeout: 10000 }, async () => {
  const reply = await client.call({ user_id: 'Alice' });
  assert.equal(reply.ok, true, JSON.stringify(reply));
  assert.equal(reply.result, 'Hello, Alice!');
  assert.equal(reply.handler, 'greet');
  assert.equal(reply.worker, workerId);
  assert.match(reply.req_id, new RegExp(`^${client.clientId}\\.\\d+\\.[0-9a-f]{16}$`));
  assert.match(client.clientId, /^node-[0-9a-f]{32}$/);
});

test('timeout: a slow handler rejects with code "timeout" and is forgotten', { timeout: 10000 }, async () => {
  const started = Date.now();
  const err = await rejection(client.call({ handler: 'sleep', ms: 2000 }, { timeoutMs: 300 }));
  const elapsed = Date.now() - started;
  assert.equal(err.code, 'timeout', String(err));
  assert.ok(elapsed >= 290 && elapsed < 1900, `elapsed ${elapsed} ms`);
  assert.equal(client.pending.size, 0);
});

test('500 calls in flight, each reply matched to its call', { timeout: 20000 }, async () => {
  const n = 500;
  const replies = await Promise.all(Array.from({ length: n },
    (_, i) => client.call({ i, tag: `call-${i}` }, { handler: 'echo', timeoutMs: 15000 })));
  for (let i = 0; i < n; i++) {
    assert.equal(replies[i].ok, true, JSON.stringify(replies[i]));
    assert.deepEqual(replies[i].result, { i, tag: `call-${i}` });
  }
  assert.equal(new Set(replies.map((r) => r.req_id)).size, n);
  assert.equal(client.pending.size, 0);
});

test('unknown handler: ok false, unknown_handler', { timeout: 10000 }, async () => {
  const reply = await client.call({ user_id: 'Alice' }, { handler: 'gret' });
  assert.equal(reply.ok, false);
  assert.equal(reply.error.code, 'unknown_handler');
  assert.equal(reply.handler, null);
});

test('no_workers: a channel nobody serves fails at once', { timeout: 10000 }, async () => {
  const started = Date.now();
  const err = await rejection(client.call({ user_id: 'Alice' },
    { channel: 'nobody-listens', timeoutMs: 5000 }));
  assert.equal(err.code, 'no_workers', String(err));
  assert.ok(Date.now() - started < 2000, 'waited for the timeout');
  assert.equal(client.pending.size, 0);
});

test('a payload with its own req_id or reply_to is refused', async () => {
  await assert.rejects(client.call({ req_id: 'mine' }), TypeError);
  await assert.rejects(client.call({ reply_to: 'callback:victim' }), TypeError);
});

test('one exact channel for every call: no pattern, no per-call channels', { timeout: 10000 }, async () => {
  // No patterns at all: the daemon subscribes to "request" only.
  assert.equal(await redisLine(redis.port, 'PUBSUB', 'NUMPAT'), ':0');
  assert.equal(await redisLine(redis.port, 'PUBSUB', 'NUMSUB', client.replyChannel), '*2');
  assert.equal(await redisLine(redis.port, 'PUBSUB', 'CHANNELS', 'callback:*'), '*1');
});
