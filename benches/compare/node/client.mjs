// An automerge-repo device for the holdfast-benches `compare` binary: the same line
// protocol as its Rust devices (benches/src/compare/device.rs): one command per stdin
// line, one JSON answer per stdout line with secs, start_ns/end_ns (CLOCK_MONOTONIC, as
// process.hrtime is on Linux) and rss_kib / peak_rss_kib (peak reset at each command).
//
//   node client.mjs --url ws://127.0.0.1:PORT/ --dir DIR --ids FILE
import fs from "node:fs"
import zlib from "node:zlib"
import readline from "node:readline"
import { Repo } from "@automerge/automerge-repo"
import { WebSocketClientAdapter } from "@automerge/automerge-repo-network-websocket"
import { NodeFSStorageAdapter } from "@automerge/automerge-repo-storage-nodefs"
import * as A from "@automerge/automerge"

const args = {}
for (let i = 2; i < process.argv.length; i += 2) args[process.argv[i].replace(/^--/, "")] = process.argv[i + 1]
for (const key of ["url", "dir", "ids"]) if (!args[key]) throw new Error(`missing --${key}`)

const BODY = "A short note body, typed on a phone."
const CHANGED = "changed"
const EDITS_PER_COMMIT = 100
const QUIET_MS = 500

fs.mkdirSync(args.dir, { recursive: true })
const repo = new Repo({ network: [], storage: new NodeFSStorageAdapter(`${args.dir}/automerge-repo`) })
let adapter = null
let handles = []
let downloader = false
let lastMessageNs = 0n
let trace = null
let traceKey = null

repo.networkSubsystem.on("message", () => { lastMessageNs = process.hrtime.bigint() })

const sleep = ms => new Promise(r => setTimeout(r, ms))
const now = () => process.hrtime.bigint()

function memory() {
  const status = fs.readFileSync("/proc/self/status", "utf8")
  const field = name => Number((status.match(new RegExp(`${name}:\\s+(\\d+)`)) || [0, 0])[1])
  return { rss_kib: field("VmRSS"), peak_rss_kib: field("VmHWM") }
}

function record(i) {
  return {
    title: new A.ImmutableString(`Note ${i}`),
    body: BODY,
    status: new A.ImmutableString("draft"),
    priority: i % 5,
    done: false,
  }
}

const title = handle => String(handle.doc()?.title ?? "")

async function connect() {
  if (!adapter) {
    adapter = new WebSocketClientAdapter(args.url, 100)
    const send = adapter.send.bind(adapter)
    adapter.send = message => { lastMessageNs = now(); return send(message) }
    repo.networkSubsystem.addNetworkAdapter(adapter)
  } else {
    adapter.connect(adapter.peerId, adapter.peerMetadata)
  }
  for (;;) {
    const peer = repo.peers[0]
    const storageId = peer && repo.getStorageIdOfPeer(peer)
    if (storageId) return storageId
    await sleep(5)
  }
}

// Resolves when the server (by its storage id) has every change of `which`.
function serverHas(which, storageId) {
  return Promise.all(which.map(handle => new Promise(resolve => {
    const same = () => {
      const theirs = handle.getSyncInfo(storageId)?.lastHeads
      const ours = handle.heads()
      return theirs && theirs.length === ours.length && theirs.every(h => ours.includes(h))
    }
    if (same()) return resolve()
    const check = () => { if (same()) { handle.off("remote-heads", check); resolve() } }
    handle.on("remote-heads", check)
  })))
}

// Waits until no message went either way for QUIET_MS; returns when the last one did.
async function quiet() {
  for (;;) {
    const last = lastMessageNs
    await sleep(QUIET_MS)
    if (lastMessageNs === last) return last
  }
}

function loadTrace(path, edits) {
  const key = `${path} ${edits}`
  if (traceKey === key) return
  const file = JSON.parse(zlib.gunzipSync(fs.readFileSync(path)).toString("utf8"))
  let all = file.txns.flatMap(t => t.patches)
  let end = file.endContent
  if (edits < all.length) {
    all = all.slice(0, edits)
    end = ""
    for (const [pos, del, ins] of all) end = end.slice(0, pos) + ins + end.slice(pos + del)
  }
  trace = { edits: all, end }
  traceKey = key
}

const commands = {
  async create(n) {
    handles = []
    for (let i = 0; i < n; i++) handles.push(repo.create(record(i)))
    await repo.flush()
    fs.writeFileSync(args.ids, handles.map(h => h.documentId).join("\n"))
  },
  async upload() {
    const storageId = await connect()
    await serverHas(handles, storageId)
  },
  async download() {
    downloader = true
    const ids = fs.readFileSync(args.ids, "utf8").split("\n").filter(Boolean)
    await connect()
    handles = await Promise.all(ids.map(id => repo.find(id)))
    handles.forEach((h, i) => {
      if (title(h) !== `Note ${i}`) throw new Error(`document ${i} arrived incomplete`)
    })
    return { records: handles.length }
  },
  async disconnect() {
    adapter?.disconnect()
    await sleep(200)
  },
  async change(k) {
    for (const h of handles.slice(0, k)) h.change(d => { d.title = new A.ImmutableString(CHANGED) })
  },
  // Done when the changes have crossed and the connection has gone quiet (the handshakes
  // of the other documents done): the time is that of the last message.
  async reconnect(k, start) {
    const storageId = await connect()
    if (downloader) {
      const changed = handles.slice(0, k)
      while (!changed.every(h => title(h) === CHANGED)) await sleep(2)
    } else {
      await serverHas(handles.slice(0, k), storageId)
    }
    const crossed = now()
    const last = await quiet()
    const end = last > crossed ? last : crossed
    return { end_ns: Number(end), secs: Number(end - start) / 1e9 }
  },
  async trace_create() {
    const handle = repo.create({ title: new A.ImmutableString("The paper"), body: "" })
    fs.writeFileSync(args.ids, handle.documentId)
    handles = [handle]
    const storageId = await connect()
    await serverHas(handles, storageId)
  },
  async trace_follow() {
    const id = fs.readFileSync(args.ids, "utf8").trim()
    await connect()
    handles = [await repo.find(id)]
  },
  async trace_replay() {
    const handle = handles[0]
    for (let i = 0; i < trace.edits.length; i += EDITS_PER_COMMIT) {
      const chunk = trace.edits.slice(i, i + EDITS_PER_COMMIT)
      handle.change(d => {
        for (const [pos, del, ins] of chunk) A.splice(d, ["body"], pos, del, ins)
      })
    }
  },
  async trace_wait() {
    const handle = handles[0]
    await new Promise(resolve => {
      const check = () => {
        if (handle.doc()?.body === trace.end) { handle.off("change", check); resolve() }
      }
      handle.on("change", check)
      check()
    })
  },
}

const lines = readline.createInterface({ input: process.stdin })
for await (const line of lines) {
  const words = line.trim().split(/\s+/)
  const command = words[0]
  if (!command) continue
  if (command === "quit") break
  try {
    if (command.startsWith("trace_") && words.length === 3) loadTrace(words[1], Number(words[2]))
    const run = commands[command]
    if (!run) throw new Error(`unknown command ${command}`)
    try { fs.writeFileSync("/proc/self/clear_refs", "5") } catch {}
    const start = now()
    const extra = (await run(Number(words[1]), start)) || {}
    const end = now()
    console.log(JSON.stringify({
      secs: Number(end - start) / 1e9, start_ns: Number(start), end_ns: Number(end),
      ...memory(), ...extra,
    }))
  } catch (e) {
    console.error(e?.stack ?? e)
    console.log(JSON.stringify({ error: `${command}: ${e?.message ?? e}` }))
  }
}
process.exit(0)
