// automerge-repo's sync server as the holdfast-benches `compare` binary runs it: a Repo
// on the node filesystem storage adapter that shares nothing unasked (sharePolicy false,
// like the reference sync server), behind a WebSocket server on a free loopback port.
// Prints {"listening":"127.0.0.1:PORT"}; exits when stdin closes.
//
//   node server.mjs DATA_DIR
import { Repo } from "@automerge/automerge-repo"
import { WebSocketServerAdapter } from "@automerge/automerge-repo-network-websocket"
import { NodeFSStorageAdapter } from "@automerge/automerge-repo-storage-nodefs"
import { WebSocketServer } from "ws"

const dir = process.argv[2]
if (!dir) throw new Error("usage: node server.mjs DATA_DIR")
const wss = new WebSocketServer({ host: "127.0.0.1", port: 0 })
wss.on("listening", () => {
  console.log(JSON.stringify({ listening: `127.0.0.1:${wss.address().port}` }))
})
new Repo({
  network: [new WebSocketServerAdapter(wss)],
  storage: new NodeFSStorageAdapter(dir),
  sharePolicy: async () => false,
})
process.stdin.on("end", () => process.exit(0))
process.stdin.resume()
