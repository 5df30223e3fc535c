// A small Bluesky network in one Node process, for integration tests: an in-memory PLC directory, the
// reference PDS and the reference AppView (@atproto/bsky on PostgreSQL), wired the way @atproto/dev-env's
// TestNetwork wires them (its bsky.ts, network.ts, util.ts), without Redis, bsync and ozone, which the
// AppView does not need to index posts and serve feeds, threads and profiles.
//
// Started by tests/integration/servers/appview.py; not meant to be run by hand.
//
// Input (environment):
//   AMP_APPVIEW_INSTALL_DIR  folder whose node_modules holds @atproto/pds, @atproto/bsky, @did-plc/*
//   AMP_APPVIEW_DATA_DIR     empty folder for the PDS's SQLite files and blobs
//   AMP_APPVIEW_READY_FILE   path of a JSON file written (atomically) once everything listens
//   AMP_APPVIEW_DB_URL       postgresql:// URL of an empty database for the AppView
//   AMP_PDS_ADMIN_PASSWORD, AMP_PDS_RATE_LIMIT_BYPASS_KEY   secrets chosen by the parent
//   LOG_ENABLED / LOG_LEVEL  read by @atproto/common's logger when it is imported
//
// Output: the ready file {"pds_url", "plc_url", "appview_url", "appview_did", "control_url", "pid"}.
//
// Wiring:
//   * the AppView gets a did:plc (services #bsky_appview and #bsky_notif at its URL), its own dataplane
//     (DataPlaneServer on the same database) and a RepoSubscription to the PDS's firehose
//     (ws://localhost:<pds port>, com.atproto.sync.subscribeRepos): every record written to the PDS is indexed;
//   * the PDS has PDS_BSKY_APP_VIEW_URL / _DID set to it, so it proxies app.bsky.* queries there;
//   * handles under .test resolve through the PDS's /.well-known/atproto-did (dev-env's mockResolvers).
//
// Control server (loopback, separate port): POST /sync waits until the AppView has indexed everything the
// PDS has sequenced so far (dev-env's processAll + processFullSubscription) -> {"ok": true, "seq": n}.
//
// Lifetime: the process exits when its stdin closes, on SIGTERM/SIGINT, or if start-up fails (exit code 1).

import crypto from 'node:crypto'
import fs from 'node:fs'
import http from 'node:http'
import net from 'node:net'
import path from 'node:path'
import { createRequire } from 'node:module'
import { pathToFileURL } from 'node:url'

const log = (msg) => process.stderr.write(`[appview_server] ${msg}\n`)

const requireEnv = (name) => {
  const value = process.env[name]
  if (!value) throw new Error(`environment variable ${name} is required`)
  return value
}

const installDir = requireEnv('AMP_APPVIEW_INSTALL_DIR')
const dataDir = requireEnv('AMP_APPVIEW_DATA_DIR')
const readyFile = requireEnv('AMP_APPVIEW_READY_FILE')
const dbUrl = requireEnv('AMP_APPVIEW_DB_URL')
const adminPassword = requireEnv('AMP_PDS_ADMIN_PASSWORD')
const bypassKey = requireEnv('AMP_PDS_RATE_LIMIT_BYPASS_KEY')

const requireFromInstall = createRequire(path.join(installDir, 'package.json'))
const importFromInstall = (name) => import(pathToFileURL(requireFromInstall.resolve(name)).href)

const hex32 = () => crypto.randomBytes(32).toString('hex')
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

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
const stack = [] // async closers, run last-in first-out

async function shutdown(reason, code = 0) {
  if (shuttingDown) return
  shuttingDown = true
  log(`stopping (${reason})`)
  const hardStop = setTimeout(() => process.exit(code), 8000)
  hardStop.unref()
  while (stack.length) {
    const [name, close] = stack.pop()
    try {
      await close()
    } catch (err) {
      log(`error while stopping ${name}: ${err?.stack ?? err}`)
    }
  }
  process.exit(code)
}

process.stdin.on('end', () => shutdown('stdin closed'))
process.stdin.on('close', () => shutdown('stdin closed'))
process.stdin.on('error', () => shutdown('stdin error'))
process.stdin.resume()
process.on('SIGTERM', () => shutdown('SIGTERM'))
process.on('SIGINT', () => shutdown('SIGINT'))

// dev-env's mockResolvers: DID documents keep the PDS's own URL, and handles under the PDS's domains are
// resolved over HTTP at the PDS (the Host header names the handle) instead of DNS.
function mockResolvers(idResolver, pdsUrl, serviceHandleDomains) {
  const origResolveHandleDns = idResolver.handle.resolveDns
  idResolver.handle.resolve = async (handle) => {
    if (!serviceHandleDomains.some((domain) => handle.endsWith(domain))) {
      return origResolveHandleDns.call(idResolver.handle, handle)
    }
    return getWithHost(new URL('/.well-known/atproto-did', pdsUrl), handle)
  }
}

// GET with a Host header of our choosing (fetch forbids setting Host): the DID text, or undefined.
const getWithHost = (url, host) =>
  new Promise((resolve) => {
    const req = http.get(url, { headers: { host }, timeout: 5000 }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (chunk) => (body += chunk))
      res.on('end', () => resolve(res.statusCode === 200 ? body.trim() : undefined))
      res.on('error', () => resolve(undefined))
    })
    req.on('timeout', () => req.destroy())
    req.on('error', () => resolve(undefined))
  })

async function startAppView(plcUrl, port, pdsPort) {
  const bsky = await importFromInstall('@atproto/bsky')
  const { Secp256k1Keypair } = await importFromInstall('@atproto/crypto')
  const plcLib = await importFromInstall('@did-plc/lib')
  const PlcClient = plcLib.Client ?? plcLib.default?.Client

  const serviceKeypair = await Secp256k1Keypair.create()
  const plcClient = new PlcClient(plcUrl)
  const url = `http://localhost:${port}`
  const serverDid = await plcClient.createDid({
    signingKey: serviceKeypair.did(),
    rotationKeys: [serviceKeypair.did()],
    handle: 'bsky.test',
    pds: url,
    signer: serviceKeypair,
  })
  await plcClient.updateData(serverDid, serviceKeypair, (x) => {
    x.services['bsky_notif'] = { type: 'BskyNotificationService', endpoint: url }
    x.services['bsky_appview'] = { type: 'BskyAppView', endpoint: url }
    return x
  })

  const db = new bsky.Database({ url: dbUrl, schema: 'appview', poolSize: 10 })
  stack.push(['appview database', () => db.close()])
  const migrationDb = new bsky.Database({ url: dbUrl, schema: 'appview' })
  await migrationDb.migrateToLatestOrThrow()
  await migrationDb.close()

  const dataplanePort = await freePort()
  const dataplane = await bsky.DataPlaneServer.create(db, dataplanePort, plcUrl, globalThis.fetch)
  stack.push(['dataplane', () => dataplane.destroy()])

  const config = new bsky.ServerConfig({
    version: 'unknown',
    port,
    didPlcUrl: plcUrl,
    publicUrl: 'https://bsky.public.url',
    serverDid,
    alternateAudienceDids: [],
    dataplaneUrls: [`http://localhost:${dataplanePort}`],
    dataplaneHttpVersion: '1.1',
    // No bsync (mutes, bookmarks, notification settings are not served); the client still needs a URL.
    bsyncUrl: 'http://127.0.0.1:9',
    bsyncHttpVersion: '1.1',
    bsyncApiKey: 'bsync-api-key',
    modServiceDid: 'did:example:invalidMod',
    labelsFromIssuerDids: [],
    bigThreadUris: new Set(),
    maxThreadParents: 50,
    disableSsrfProtection: true,
    searchTagsHide: new Set(),
    searchTagsHideAll: new Set(),
    threadTagsBumpDown: new Set(),
    threadTagsHide: new Set(),
    visibilityTagHide: '',
    visibilityTagRankPrefix: '',
    debugFieldAllowedDids: new Set(),
    draftsLimit: 500,
    feedGenSkeletonTimeout: 5000,
    adminPasswords: [adminPassword],
    etcdHosts: [],
  })
  const server = bsky.BskyAppView.create({ config, signingKey: serviceKeypair })
  const sub = new bsky.RepoSubscription({
    service: `ws://localhost:${pdsPort}`,
    db,
    idResolver: dataplane.idResolver,
  })
  await server.start()
  stack.push(['appview', () => server.destroy()])
  stack.push(['firehose subscription', () => sub.destroy()])
  return { server, dataplane, sub, url, serverDid }
}

async function startPds(plcUrl, port, appview) {
  const { PDS, envToCfg, envToSecrets, readEnv } = await importFromInstall('@atproto/pds')
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
    PDS_RATE_LIMITS_ENABLED: 'false',
    PDS_RATE_LIMIT_BYPASS_KEY: bypassKey,
    PDS_BSKY_APP_VIEW_URL: appview.url,
    PDS_BSKY_APP_VIEW_DID: appview.serverDid,
  })
  const env = readEnv()
  const pds = await PDS.create(envToCfg(env), envToSecrets(env))
  await pds.start()
  stack.push(['pds', () => pds.destroy()])
  return pds
}

// dev-env's TestNetwork.processAll + processFullSubscription: the PDS's background queue, then the
// subscription until its cursor reaches the PDS's last sequence number.
async function sync(pds, sub, timeoutMs = 10000) {
  await pds.ctx.backgroundQueue.processAll()
  const lastSeq = await pds.ctx.sequencer.curr()
  if (!lastSeq) return 0
  const start = Date.now()
  while (Date.now() - start < timeoutMs) {
    await sub.processAll()
    const cursor = await sub.getCursor()
    if (cursor && cursor >= lastSeq) return lastSeq
    await sleep(10)
  }
  throw new Error(`the AppView did not index up to seq ${lastSeq} within ${timeoutMs} ms`)
}

async function main() {
  for (const dir of [dataDir, path.join(dataDir, 'blobs'), path.join(dataDir, 'blobs-tmp')]) {
    fs.mkdirSync(dir, { recursive: true })
  }
  const plcModule = await importFromInstall('@did-plc/server')
  const { PlcServer, Database } = plcModule.default ?? plcModule
  const plc = PlcServer.create({ db: Database.mock(), port: 0 })
  await plc.start()
  stack.push(['plc', () => plc.destroy()])
  const plcUrl = `http://localhost:${plc.server.address().port}`
  log(`PLC directory listening on ${plcUrl}`)

  const appviewPort = await freePort()
  const pdsPort = await freePort()
  const appview = await startAppView(plcUrl, appviewPort, pdsPort)
  log(`AppView ${appview.serverDid} listening on ${appview.url}`)
  const pds = await startPds(plcUrl, pdsPort, appview)
  const pdsUrl = `http://localhost:${pdsPort}`
  log(`PDS listening on ${pdsUrl}, proxying app.bsky.* to the AppView`)

  const domains = pds.ctx.cfg.identity.serviceHandleDomains
  for (const resolver of [pds.ctx.idResolver, appview.server.ctx.idResolver, appview.dataplane.idResolver]) {
    mockResolvers(resolver, pdsUrl, domains)
  }
  // Subscribe only now, as dev-env does, so no event is handled before the resolvers are in place.
  void appview.sub.start()

  const control = http.createServer((req, res) => {
    const reply = (status, body) => {
      res.writeHead(status, { 'content-type': 'application/json' })
      res.end(JSON.stringify(body))
    }
    if (req.method === 'POST' && req.url === '/sync') {
      sync(pds, appview.sub).then(
        (seq) => reply(200, { ok: true, seq }),
        (err) => reply(504, { ok: false, error: String(err?.message ?? err) }),
      )
      return
    }
    return reply(404, { error: 'not found' })
  })
  const controlPort = await listenOnLoopback(control)
  stack.push(['control', () => control.close()])

  const tmp = `${readyFile}.tmp`
  fs.writeFileSync(
    tmp,
    JSON.stringify({
      pds_url: pdsUrl,
      plc_url: plcUrl,
      appview_url: appview.url,
      appview_did: appview.serverDid,
      control_url: `http://127.0.0.1:${controlPort}`,
      pid: process.pid,
    }),
  )
  fs.renameSync(tmp, readyFile)
  log('ready')
}

main().catch((err) => {
  log(`failed to start: ${err?.stack ?? err}`)
  shutdown('start-up failure', 1)
})
