// Related stories from a website backend in Node.js, using only protos/recommender/v1/recommender.proto.
//
//   npm install            (in this folder)
//   node related.js 127.0.0.1:50051 libya-security-memoranda 5
//
// Prints the response as JSON. Set RECOMMENDER_TOKEN to send a bearer token (servers started
// with --auth-reads need it).
"use strict";

const path = require("path");
const grpc = require("@grpc/grpc-js");
const protoLoader = require("@grpc/proto-loader");

const PROTO = path.join(__dirname, "..", "..", "protos", "recommender", "v1", "recommender.proto");

function main() {
  const [address = "127.0.0.1:50051", articleId = "libya-security-memoranda", k = "5"] =
    process.argv.slice(2);
  const definition = protoLoader.loadSync(PROTO, {
    keepCase: true, // field names exactly as in the .proto (article_id, published_at, ...)
    longs: String,
    enums: String,
    defaults: true,
    oneofs: true,
  });
  const { recommender } = grpc.loadPackageDefinition(definition);
  const client = new recommender.v1.Recommender(address, grpc.credentials.createInsecure());

  const metadata = new grpc.Metadata();
  if (process.env.RECOMMENDER_TOKEN) {
    metadata.add("authorization", `Bearer ${process.env.RECOMMENDER_TOKEN}`);
  }
  const deadline = new Date(Date.now() + 5000); // a page render should not wait longer
  client.Related({ article_id: articleId, k: Number(k) }, metadata, { deadline }, (err, response) => {
    if (err) {
      console.error(`${grpc.status[err.code]}: ${err.details}`);
      process.exit(1);
    }
    console.log(JSON.stringify(response));
    client.close();
  });
}

main();
