// Local TimescaleDB: PGlite (PostgreSQL + TimescaleDB compiled to WASM) on a persistent data
// directory, served over the PostgreSQL wire protocol by pglite-socket.
//
//   node infra/local/pglite-server.mjs --data <dir> [--host 127.0.0.1] [--port 5433]
//
// PGlite is one single-user backend: there is one database ("postgres") and one session, whatever
// user/database a client names. pgbouncer (pool size 1, transaction pooling) sits in front so
// that many clients share that one session one transaction at a time.
// Prints "ready <host>:<port>" once it accepts connections; exits 0 after SIGTERM/SIGINT with
// the database closed (so its files are consistent for the next start).
import { parseArgs } from "node:util";
import { PGlite } from "@electric-sql/pglite";
import { timescaledb } from "@electric-sql/pglite/timescaledb";
import { PGLiteSocketServer } from "@electric-sql/pglite-socket";

const { values: args } = parseArgs({
  options: {
    data: { type: "string" },
    host: { type: "string", default: "127.0.0.1" },
    port: { type: "string", default: "5433" },
  },
});
if (!args.data) {
  console.error("usage: pglite-server.mjs --data <dir> [--host H] [--port P]");
  process.exit(2);
}

const log = (msg) => console.log(`${new Date().toISOString()} ${msg}`);

log(`opening ${args.data}`);
const db = new PGlite(args.data, { extensions: { timescaledb } });
await db.waitReady;
// Trap found here: on a reopened data directory the library must be loaded explicitly before
// serving, or continuous-aggregate queries crash the WASM and inserts fail with
// "not supported under the current license".
await db.exec("CREATE EXTENSION IF NOT EXISTS timescaledb");
await db.exec("LOAD 'timescaledb'");
const { rows } = await db.query("SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'");
log(`timescaledb ${rows[0].extversion} loaded`);

// pgbouncer holds one server connection; allow a few so a reconnect is never refused while the
// previous socket is still being torn down.
const server = new PGLiteSocketServer({ db, host: args.host, port: Number(args.port), maxConnections: 4 });
server.addEventListener("error", (e) => log(`socket error: ${e.detail?.message ?? e.detail}`));

let stopping = false;
async function shutdown(signal) {
  if (stopping) return;
  stopping = true;
  log(`${signal}: closing`);
  try {
    await server.stop();
    await db.close();
    log("closed cleanly");
    process.exit(0);
  } catch (err) {
    log(`error while closing: ${err?.stack ?? err}`);
    process.exit(1);
  }
}
process.on("SIGTERM", () => shutdown("SIGTERM"));
process.on("SIGINT", () => shutdown("SIGINT"));

await server.start();
log(`ready ${args.host}:${args.port}`);
