// MQTT.js against a broker over WebSockets: node mqttjs.mjs URL VERSION [CA_FILE]
// (VERSION 4: MQTT 3.1.1, 5: 5.0; CA_FILE: the certificate a wss:// server must chain to).
// Prints what a subscriber received (retained, QoS 0/1/2, a will) one line each, then "done".
import { readFileSync } from 'node:fs';
import mqtt from 'mqtt';

const [url, ver, caFile] = process.argv.slice(2);
const tls = caFile ? { ca: readFileSync(caFile), rejectUnauthorized: true } : {};
const v = Number(ver);
const base = `js${v}`;
// The whole run's limit (longer when the broker runs under emulation).
const limit = Number(process.env.MQTTJS_TIMEOUT_MS || 20000);
const timer = setTimeout(() => {
  console.log('timeout');
  process.exit(2);
}, limit);

function connect(clientId, extra = {}) {
  return new Promise((resolve, reject) => {
    const c = mqtt.connect(url, {
      protocolVersion: v,
      clientId,
      reconnectPeriod: 0,
      connectTimeout: limit,
      ...tls,
      ...extra,
    });
    c.once('connect', () => resolve(c));
    c.once('error', reject);
  });
}

const pub = await connect(`pub${v}`);
await pub.publishAsync(`${base}/retained`, 'kept', { qos: 1, retain: true });

const sub = await connect(`sub${v}`);
const got = [];
let wake = () => {};
sub.on('message', (topic, payload, packet) => {
  let line = `${topic} ${payload} qos${packet.qos}${packet.retain ? ' retained' : ''}`;
  const up = packet.properties && packet.properties.userProperties;
  if (up) line += ` ${JSON.stringify(up)}`;
  got.push(line);
  wake();
});
const granted = await sub.subscribeAsync(`${base}/#`, { qos: 2 });
console.log(`granted ${granted.map((g) => g.qos).join(',')}`);
const until = (n) =>
  new Promise((resolve) => {
    wake = () => got.length >= n && resolve();
    wake();
  });
await until(1);

for (const qos of [0, 1, 2]) {
  const props = v === 5 && qos === 1 ? { properties: { userProperties: { from: 'mqttjs' } } } : {};
  await pub.publishAsync(`${base}/qos${qos}`, `message ${qos}`, { qos, ...props });
}
await until(4);

// A client that drops its connection without DISCONNECT: its will is published.
const dying = await connect(`dying${v}`, {
  will: { topic: `${base}/will`, payload: 'gone', qos: 1, retain: false },
});
dying.stream.destroy();
await until(5);

for (const line of got) console.log(line);
// Clear the retained message, then end cleanly.
await pub.publishAsync(`${base}/retained`, '', { qos: 1, retain: true });
await Promise.all([pub.endAsync(), sub.endAsync()]);
clearTimeout(timer);
console.log('done');
