// A reference Bluesky PDS plus an in-memory PLC directory in one Node process, for integration tests.
//
// Started by tests/integration/servers/pds.py; not meant to be run by hand (but it can be, see below).
//
// Input (environment):
//   AMP_PDS_INSTALL_DIR   folder whose node_modules holds @atproto/pds and @did-plc/server
//   AMP_PDS_DATA_DIR      empty folder for the PDS's SQLite files and blobs
//   AMP_PDS_READY_FILE    path of a JSON file written (atomically) once everything listens
//   AMP_PDS_ADMIN_PASSWORD, AMP_PDS_RATE_LIMIT_BYPASS_KEY   secrets chosen by the parent
//   AMP_PDS_RATE_LIMITS   "true" (default) to enforce the PDS's real rate limits
//   LOG_ENABLED / LOG_LEVEL  read by @atproto/common's logger when it is imported
//
// Output: the ready file {"pds_url", "plc_url", "control_url", "pid"}; logs on stdout/stderr.
//
// Control server (loopback, separate port): GET /requests -> {"counts": {"/xrpc/...": n}} with the number of
// HTTP requests the PDS received per path (query string dropped), leaving out those that carry the header
// X-Amplifier-Fixture (the fixtures' own helpers); POST /reset sets them to zero.
//
// Lifetime: the process exits when its stdin closes (the parent died or asked it to stop), on SIGTERM/SIGINT,
// or if anything fails during start-up (exit code 1, error on stderr).

import crypto from 'node:crypto'
import fs from 'node:fs'
import http from 'node:http'
import net from 'node:net'
import path from 'node:path'
import { createRequire } from 'node:module'
import { pathToFileURL } from 'node:url'

const log = (msg) => process.stderr.write(`[pds_server] ${msg}\n`)

const requireEnv = (name) => {
  const value = process.env[name]
  if (!value) throw new Error(`environment variable ${name} is required`)
  return value
}

const installDir = requireEnv('AMP_PDS_INSTALL_DIR')
const dataDir = requireEnv('AMP_PDS_DATA_DIR')
const readyFile = requireEnv('AMP_PDS_READY_FILE')
const adminPassword = requireEnv('AMP_PDS_ADMIN_PASSWORD')
const bypassKey = requireEnv('AMP_PDS_RATE_LIMIT_BYPASS_KEY')
const rateLimits = (process.env.AMP_PDS_RATE_LIMITS ?? 'true') === 'true'

// Resolve the packages from the install folder, not from this script's location (the checkout).
const requireFromInstall = createRequire(path.join(installDir, 'package.json'))
const importFromInstall = (name) => import(pathToFileURL(requireFromInstall.resolve(name)).href)

const hex32 = () => crypto.randomBytes(32).toString('hex')

// A port that was free a moment ago. The PDS must know its own port before it starts (it is part of its
// public URL and of every DID document it writes), so it cannot simply listen on port 0.
const freePort = () =>
  new Promise((resolve, reject) => {
    const srv = net.createServer()
    srv.unref()
    srv.on('error', reject)
    srv.listen({ port: 0 }, () => {
      const { port } = srv.address()
      srv.close(() => resolve(port))
    })
  })

const listenOnLoopback = (server) =>
  new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen({ port: 0, host: '127.0.0.1' }, () => resolve(server.address().port))
  })

let shuttingDown = false
let plc = null
let pds = null
let control = null

async function shutdown(reason, code = 0) {
  if (shuttingDown) return
  shuttingDown = true
  log(`stopping (${reason})`)
  const hardStop = setTimeout(() => process.exit(code), 5000)
  hardStop.unref()
  try {
    if (control) control.close()
    if (pds) await pds.destroy()
    if (plc) await plc.destroy()
  } catch (err) {
    log(`error while stopping: ${err?.stack ?? err}`)
  }
  process.exit(code)
}

// Exit when the parent goes away: it holds our stdin open for as long as it wants us alive.
process.stdin.on('end', () => shutdown('stdin closed'))
process.stdin.on('close', () => shutdown('stdin closed'))
process.stdin.on('error', () => shutdown('stdin error'))
process.stdin.resume()
process.on('SIGTERM', () => shutdown('SIGTERM'))
process.on('SIGINT', () => shutdown('SIGINT'))

async function startPds(plcUrl) {
  const { PDS, envToCfg, envToSecrets, readEnv } = await importFromInstall('@atproto/pds')
  let lastError = null
  for (let attempt = 1; attempt <= 5; attempt++) {
    const port = await freePort()
    Object.assign(process.env, {
      PDS_HOSTNAME: 'localhost',
      PDS_PORT: String(port),
      PDS_DEV_MODE: 'true',
      PDS_DATA_DIRECTORY: dataDir,
      PDS_BLOBSTORE_DISK_LOCATION: path.join(dataDir, 'blobs'),
      PDS_BLOBSTORE_DISK_TMP_LOCATION: path.join(dataDir, 'blobs-tmp'),
      PDS_REPO_SIGNING_KEY_K256_PRIVATE_KEY_HEX: hex32(),
      PDS_PLC_ROTATION_KEY_K256_PRIVATE_KEY_HEX: hex32(),
      PDS_DPOP_SECRET: hex32(),
      PDS_JWT_SECRET: hex32(),
      PDS_ADMIN_PASSWORD: adminPassword,
      PDS_DID_PLC_URL: plcUrl,
      PDS_INVITE_REQUIRED: 'false',
      PDS_SERVICE_HANDLE_DOMAINS: '.test',
      PDS_CRAWLERS: '',
      PDS_RATE_LIMITS_ENABLED: rateLimits ? 'true' : 'false',
      PDS_RATE_LIMIT_BYPASS_KEY: bypassKey,
    })
    const env = readEnv()
    try {
      const server = await PDS.create(envToCfg(env), envToSecrets(env))
      await server.start()
      return { server, port }
    } catch (err) {
      lastError = err
      if (err?.code !== 'EADDRINUSE') throw err
      log(`port ${port} was taken, retrying`)
    }
  }
  throw lastError
}

async function main() {
  for (const dir of [dataDir, path.join(dataDir, 'blobs'), path.join(dataDir, 'blobs-tmp')]) {
    fs.mkdirSync(dir, { recursive: true })
  }

  const plcModule = await importFromInstall('@did-plc/server')
  const { PlcServer, Database } = plcModule.default ?? plcModule
  plc = PlcServer.create({ db: Database.mock(), port: 0 })
  await plc.start()
  const plcUrl = `http://localhost:${plc.server.address().port}`
  log(`PLC directory listening on ${plcUrl}`)

  const started = await startPds(plcUrl)
  pds = started.server
  const pdsUrl = `http://localhost:${started.port}`
  log(`PDS listening on ${pdsUrl} (rate limits ${rateLimits ? 'on' : 'off'})`)

  // Count every request the PDS receives, before Express sees it: a client cannot observe a response (and
  // then ask for the counts) before the count is taken, because both happen in this single thread.
  const counts = new Map()
  // Requests made by the test fixtures' own helpers carry X-Amplifier-Fixture and are not counted.
  pds.server.prependListener('request', (req) => {
    if (req.headers['x-amplifier-fixture']) return
    const p = (req.url ?? '').split('?', 1)[0]
    counts.set(p, (counts.get(p) ?? 0) + 1)
  })

  control = http.createServer((req, res) => {
    const reply = (status, body) => {
      res.writeHead(status, { 'content-type': 'application/json' })
      res.end(JSON.stringify(body))
    }
    if (req.method === 'GET' && req.url === '/requests') return reply(200, { counts: Object.fromEntries(counts) })
    if (req.method === 'POST' && req.url === '/reset') {
      counts.clear()
      return reply(200, { ok: true })
    }
    return reply(404, { error: 'not found' })
  })
  const controlPort = await listenOnLoopback(control)

  const tmp = `${readyFile}.tmp`
  fs.writeFileSync(
    tmp,
    JSON.stringify({ pds_url: pdsUrl, plc_url: plcUrl, control_url: `http://127.0.0.1:${controlPort}`, pid: process.pid }),
  )
  fs.renameSync(tmp, readyFile)
  log('ready')
}

main().catch((err) => {
  log(`failed to start: ${err?.stack ?? err}`)
  shutdown('start-up failure', 1)
})
