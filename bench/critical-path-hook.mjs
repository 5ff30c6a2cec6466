// Preloaded (node --import) into a proxy the critical-path benchmark measures: times each call's
// phases on the proxy's own clock, from node's and undici's diagnostics channels, for calls made one
// at a time (concurrency 1: each phase's events belong to the one call in flight).
//   pre:      the request's headers parsed -> the upstream request's headers written
//   upstream: written -> the upstream answer's headers read
//   body:     the answer's headers -> its last byte read
//   post:     the last byte -> the client's answer ended (res.end() returned: its bytes written)
// SIGUSR2 writes the medians of the calls since the last signal to $CRITICAL_PATH_OUT, and starts
// again.
import dc from 'node:diagnostics_channel';
import { writeFileSync } from 'node:fs';
import http from 'node:http';

const now = () => performance.now();
const PHASES = ['pre', 'upstream', 'body', 'post'];
let times = Object.fromEntries(PHASES.map((p) => [p, []]));
/** The call in flight: when each of its events came. */
let call = null;

dc.subscribe('http.server.request.start', () => {
  call = { start: now(), sent: 0, headers: 0, done: 0 };
});
dc.subscribe('undici:client:sendHeaders', () => {
  if (call && call.sent === 0) call.sent = now();
});
dc.subscribe('undici:request:headers', () => {
  if (call && call.sent > 0 && call.headers === 0) call.headers = now();
});
dc.subscribe('undici:request:trailers', () => {
  if (call && call.headers > 0 && call.done === 0) call.done = now();
});

const end = http.ServerResponse.prototype.end;
http.ServerResponse.prototype.end = function (...args) {
  const out = end.apply(this, args);
  const c = call;
  if (c && c.done > 0) {
    const t = now();
    times.pre.push(c.sent - c.start);
    times.upstream.push(c.headers - c.sent);
    times.body.push(c.done - c.headers);
    times.post.push(t - c.done);
    call = null;
  }
  return out;
};

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? null : s[Math.floor(s.length / 2)];
};

process.on('SIGUSR2', () => {
  const out = { calls: times.pre.length };
  for (const p of PHASES) out[p] = median(times[p]);
  writeFileSync(process.env.CRITICAL_PATH_OUT, JSON.stringify(out));
  times = Object.fromEntries(PHASES.map((p) => [p, []]));
});
