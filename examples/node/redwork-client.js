#!/usr/bin/env node
'use strict';
/*
 * redwork-client.js -- a Node.js client for redwork's wire protocol 1.1,
 * on ioredis (https://github.com/redis/ioredis).
 *
 *   const { RedworkClient } = require('./redwork-client');
 *   const client = new RedworkClient({ host: '127.0.0.1', port: 6379 });
 *   await client.connect();
 *   const reply = await client.call({ user_id: 'Alice' });
 *   // { req_id: 'node-….1.…', ok: true, result: 'Hello, Alice!', handler: 'greet', … }
 *   await client.close();
 *
 * How it follows the protocol:
 *
 * - Subscribe first. Redis Pub/Sub keeps nothing: a reply published while
 *   nobody listens is gone. connect() SUBSCRIBEs once to the one channel
 *   callback:<clientId> and waits for Redis to confirm it; every request is
 *   published after that, so no reply can be missed.
 * - One exact channel for many calls. Every request names it in reply_to
 *   (protocol 1.1). Not a pattern: Redis matches every PUBLISH against
 *   every pattern subscription, so many idle pattern clients would slow
 *   every reply down. Replies are matched to their callers by the reply's
 *   req_id through a Map of pending promises: any number of calls can be in
 *   flight and no call pays for a SUBSCRIBE/UNSUBSCRIBE round trip.
 * - Ids nobody can guess. A req_id is "<clientId>.<n>.<64 random bits in
 *   hex>": one who sees the client's earlier ids cannot answer its next.
 * - Two connections. A connection in subscriber mode can only (un)subscribe,
 *   so requests are PUBLISHed on a second one.
 * - No workers. PUBLISH returns how many subscribers got the request; 0
 *   means no daemon serves the channel, so the call fails at once with an
 *   Error whose code is 'no_workers' instead of waiting for its timeout.
 * - Timeouts. A call with no reply by its deadline fails with code
 *   'timeout'; a late reply for it is ignored.
 *
 * Errors from call() have a `code`: 'no_workers', 'timeout', 'closed' (the
 * client was closed first), 'bad_reply' (a reply that is not JSON), or the
 * ioredis error of a failed PUBLISH. A reply with "ok": false is a reply,
 * not an error: look at reply.error.code.
 *
 * Command line:
 *   node redwork-client.js [--host H] [--port P] [--timeout MS] CHANNEL JSON
 * prints the reply as one line of JSON; exits 0 if "ok" is true, 1 if it is
 * false, 2 on no_workers, timeout or a Redis error.
 */

const crypto = require('node:crypto');
const Redis = require('ioredis');

const DEFAULT_TIMEOUT_MS = 5000;

/** An Error with a `code`, like Node's system errors. */
function redworkError(code, message) {
  const err = new Error(message);
  err.code = code;
  return err;
}

class RedworkClient {
  /**
   * @param {object} [options]
   * @param {string} [options.host='127.0.0.1'] Redis host
   * @param {number} [options.port=6379] Redis port
   * @param {string} [options.channel='request'] default request channel
   * @param {string} [options.replyPrefix='callback:'] the daemon's reply_prefix
   * @param {object} [options.redisOptions] more ioredis options (password, db, ...)
   */
  constructor({
    host = '127.0.0.1',
    port = 6379,
    channel = 'request',
    replyPrefix = 'callback:',
    redisOptions = {},
  } = {}) {
    this.host = host;
    this.port = port;
    this.channel = channel;
    this.replyPrefix = replyPrefix;
    this.redisOptions = redisOptions;
    // Unique across processes and hosts: it names this client's replies.
    this.clientId = 'node-' + crypto.randomUUID().replace(/-/g, '');
    this.replyChannel = `${replyPrefix}${this.clientId}`;
    this.counter = 0;
    this.pending = new Map(); // req_id -> { resolve, reject, timer }
    this.sub = null; // subscriber connection: the one SUBSCRIBE
    this.pub = null; // command connection: PUBLISH
    this.lastError = null; // the last connection error ioredis reported
  }

  /** Opens both connections and subscribes; resolves once Redis confirms. */
  async connect() {
    if (this.sub) throw new Error('already connected');
    const options = {
      host: this.host,
      port: this.port,
      lazyConnect: true, // connect() below, so that failures reject it
      ...this.redisOptions,
    };
    this.sub = new Redis(options);
    this.pub = new Redis(options);
    for (const conn of [this.sub, this.pub]) {
      // ioredis reconnects by itself; without a listener it would print
      // every connection error. Calls in flight then end at their deadline.
      conn.on('error', (err) => { this.lastError = err; });
    }
    this.sub.on('message', (channel, message) => this._onReply(channel, message));
    try {
      await Promise.all([this.sub.connect(), this.pub.connect()]);
      // Resolves when Redis's subscribe confirmation has arrived. ioredis
      // subscribes again by itself after a reconnection.
      await this.sub.subscribe(this.replyChannel);
    } catch (err) {
      this.sub.disconnect();
      this.pub.disconnect();
      this.sub = this.pub = null;
      // ioredis rejects with "Connection is closed."; the error event before
      // it says why (ECONNREFUSED, ...).
      throw this.lastError || err;
    }
  }

  /**
   * Sends PAYLOAD (an object) and resolves with the reply object.
   *
   * @param {object} payload the request fields; req_id and reply_to are added
   *   (leave them out)
   * @param {object} [options]
   * @param {string} [options.handler] sets the request's "handler" field
   * @param {string} [options.channel] request channel (default: the client's)
   * @param {number} [options.timeoutMs=5000] how long to wait for the reply
   */
  async call(payload, { handler, channel = this.channel, timeoutMs = DEFAULT_TIMEOUT_MS } = {}) {
    if (!this.pub) throw redworkError('closed', 'not connected: call connect() first');
    if (payload === null || typeof payload !== 'object' || Array.isArray(payload)) {
      throw new TypeError('payload must be an object');
    }
    if ('req_id' in payload || 'reply_to' in payload) {
      throw new TypeError('the client sets req_id and reply_to: leave them out');
    }

    this.counter += 1;
    const reqId = `${this.clientId}.${this.counter}.${crypto.randomBytes(8).toString('hex')}`;
    const request = { ...payload, req_id: reqId, reply_to: this.replyChannel };
    if (handler !== undefined) request.handler = handler;

    // Register before publishing: the reply may arrive before PUBLISH's own
    // answer does (they come on different connections).
    const reply = new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this._settle(reqId, redworkError('timeout',
          `no reply for ${reqId} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(reqId, { resolve, reject, timer });
    });
    // `reply` may be rejected (timeout, close) while PUBLISH is still in
    // flight, before anyone awaits it; this keeps Node from reporting that
    // as an unhandled rejection. Our caller still gets the rejection.
    reply.catch(() => {});

    try {
      const receivers = await this.pub.publish(channel, JSON.stringify(request));
      if (receivers === 0) {
        this._settle(reqId, redworkError('no_workers',
          `no worker is subscribed to channel '${channel}'`));
      }
    } catch (err) {
      this._settle(reqId, err); // PUBLISH failed: no reply will come
    }
    return reply;
  }

  /** Fails the calls still waiting (code 'closed') and closes both connections. */
  async close() {
    for (const reqId of [...this.pending.keys()]) {
      this._settle(reqId, redworkError('closed', 'the client was closed'));
    }
    const conns = [this.sub, this.pub].filter(Boolean);
    this.sub = this.pub = null;
    // disconnect(), not quit(): it cannot hang on a dead connection, and it
    // stops ioredis's reconnection attempts.
    for (const conn of conns) conn.disconnect();
  }

  /** A message on callback:<clientId>: resolve the call its req_id names. */
  _onReply(channel, message) {
    let reply;
    try {
      reply = JSON.parse(message);
    } catch (err) {
      return; // not a reply envelope: it names no call
    }
    if (reply !== null && typeof reply.req_id === 'string') {
      this._settle(reply.req_id, null, reply); // does nothing for a late reply
    }
  }

  /**
   * Ends the call REQ_ID: rejects it with ERR, or resolves it with REPLY.
   * Every path out of a call comes here, so the Map entry and the timer are
   * always cleaned up, and only the first outcome counts.
   */
  _settle(reqId, err, reply) {
    const entry = this.pending.get(reqId);
    if (!entry) return false; // settled already (timed out, answered, ...)
    this.pending.delete(reqId);
    clearTimeout(entry.timer);
    if (err) entry.reject(err);
    else entry.resolve(reply);
    return true;
  }
}

/* ---- command line --------------------------------------------------- */

const USAGE = 'usage: node redwork-client.js [--host H] [--port P] [--timeout MS] CHANNEL JSON';

async function main(argv) {
  let host = '127.0.0.1';
  let port = 6379;
  let timeoutMs = DEFAULT_TIMEOUT_MS;
  const rest = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '-h' || arg === '--help') {
      console.log(USAGE);
      return 0;
    } else if (arg === '--host' && i + 1 < argv.length) {
      host = argv[++i];
    } else if (arg === '--port' && i + 1 < argv.length) {
      port = Number(argv[++i]);
    } else if (arg === '--timeout' && i + 1 < argv.length) {
      timeoutMs = Number(argv[++i]);
    } else if (arg.startsWith('--')) {
      console.error(`unknown option ${arg}\n${USAGE}`);
      return 64;
    } else {
      rest.push(arg);
    }
  }
  if (rest.length !== 2 || !Number.isInteger(port) || !(timeoutMs > 0)) {
    console.error(USAGE);
    return 64;
  }
  const [channel, json] = rest;
  let payload;
  try {
    payload = JSON.parse(json);
  } catch (err) {
    console.error(`JSON: ${err.message}`);
    return 64;
  }
  if (payload === null || typeof payload !== 'object' || Array.isArray(payload)) {
    console.error('JSON must be an object');
    return 64;
  }
  delete payload.req_id; // the client names its requests

  // Fail fast on an unreachable server instead of retrying in the background.
  const client = new RedworkClient({
    host, port, channel, redisOptions: { retryStrategy: () => null, connectTimeout: timeoutMs },
  });
  try {
    await client.connect();
    const reply = await client.call(payload, { timeoutMs });
    console.log(JSON.stringify(reply));
    return reply !== null && typeof reply === 'object' && reply.ok === true ? 0 : 1;
  } catch (err) {
    console.error(`${err.code || 'redis'}: ${err.message}`);
    return 2;
  } finally {
    await client.close();
  }
}

if (require.main === module) {
  main(process.argv.slice(2)).then((status) => { process.exitCode = status; });
}

module.exports = { RedworkClient, redworkError };
