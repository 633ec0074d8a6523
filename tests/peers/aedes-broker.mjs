// aedes as an upstream broker for the end-to-end tests.
//
//   node tests/peers/aedes-broker.mjs --port N [--host 127.0.0.1]
//
// Default options and in-memory persistence: sessions live as long as the
// process, none survives a restart. Prints `listening on HOST:PORT` on stdout
// once the server accepts connections; logs each client's connection, error and
// close, with the reason, on stderr (an error one client repeats as a count);
// exits 0 on SIGTERM or SIGINT after closing the server and the broker.

import net from 'node:net'
import { parseArgs } from 'node:util'
import { Aedes } from 'aedes'

const { values } = parseArgs({
  options: {
    port: { type: 'string' },
    host: { type: 'string', default: '127.0.0.1' }
  }
})
const port = Number(values.port)
if (!Number.isInteger(port) || port < 1 || port > 65535) {
  console.error('usage: node aedes-broker.mjs --port N [--host 127.0.0.1]')
  process.exit(2)
}

const broker = await Aedes.createBroker()
const server = net.createServer(broker.handle)

// One line per event; a client id comes from the network, so it is cut short.
const who = (client) => String(client?.id ?? '(not connected)').slice(0, 64)
const log = (line) => process.stderr.write(`aedes: ${line}\n`)

// A client's error can repeat for every packet it had already sent (aedes
// reports maxInflightInbound for each PUBLISH past the limit): the first is
// logged, the repeats counted and logged as one line when the client goes or
// has another error.
const repeats = new WeakMap()
function flushRepeats (client) {
  const last = repeats.get(client)
  if (last?.count > 0) log(`client ${who(client)}: the same error ${last.count} more time(s)`)
  if (last) last.count = 0
}

broker.on('client', (client) => log(`client ${who(client)} connected`))
broker.on('clientDisconnect', (client) => {
  flushRepeats(client)
  log(`client ${who(client)} disconnected`)
})
broker.on('clientError', (client, err) => {
  const last = repeats.get(client)
  if (last?.message === err.message) {
    last.count++
    return
  }
  flushRepeats(client)
  repeats.set(client, { message: err.message, count: 0 })
  log(`client ${who(client)} error: ${err.message}`)
})
broker.on('connectionError', (client, err) => log(`connection error: ${err.message}`))
broker.on('keepaliveTimeout', (client) => log(`client ${who(client)} keep-alive timeout`))

server.on('error', (err) => {
  log(`server error: ${err.message}`)
  process.exit(1)
})
server.listen(port, values.host, () => {
  process.stdout.write(`listening on ${values.host}:${port}\n`)
})

let stopping = false
function stop (signal) {
  if (stopping) return
  stopping = true
  log(`${signal}: closing`)
  // Stop accepting, close every client, then end.
  server.close()
  broker.close(() => process.exit(0))
  setTimeout(() => process.exit(0), 2000).unref()
}
process.on('SIGTERM', () => stop('SIGTERM'))
process.on('SIGINT', () => stop('SIGINT'))
