// lora-packet (npm) as a second LoRaWAN 1.0.x implementation for the tests.
//
//   node tests/peers/lora-packet.mjs < requests.jsonl > answers.jsonl
//
// Reads one JSON request a line on stdin and writes one JSON answer a line on
// stdout, in order. Hex everywhere; DevAddr and keys as written (MSB first).
//
//   {"op":"encode","confirmed":false,"dev_addr":"26011BDA","fctrl":128,
//    "fcnt":70000,"fopts_hex":"02","fport":1,"payload_hex":"0102",
//    "nwk_s_key":"...","app_s_key":"..."}
//     -> {"phy_hex":"..."}      (fport null: no FPort and no payload)
//   {"op":"decode","phy_hex":"...","nwk_s_key":"...","app_s_key":"...","fcnt":70000}
//     -> {"mic_ok":true,"mtype":"Unconfirmed Data Up","dev_addr":"26011bda",
//         "fcnt":4464,"fopts_hex":"02","fport":1,"payload_hex":"0102"}
//   anything that fails -> {"error":"..."}
//
// lora-packet's conventions, handled here: DevAddr is a big-endian Buffer;
// FCnt is 16 bits, and the upper half of a 32-bit counter goes separately as
// `FCntMSBytes`, appended as given after the low half, so in wire order
// (little-endian); fromFields computes no MIC for a frame without FPort.

import readline from 'node:readline'
import lora from 'lora-packet'

const bytes = (hex) => Buffer.from(hex ?? '', 'hex')

function key (hex, name) {
  const k = bytes(hex)
  if (k.length !== 16) throw new Error(`${name} is not 32 hex digits`)
  return k
}

// The upper 16 bits of the 32-bit counter, in the order lora-packet wants.
function fcntMSBytes (fcnt) {
  if (!Number.isInteger(fcnt) || fcnt < 0 || fcnt > 0xffffffff) {
    throw new Error(`fcnt ${fcnt} is not a 32-bit counter`)
  }
  return Buffer.from([(fcnt >>> 16) & 0xff, (fcnt >>> 24) & 0xff])
}

function encode (r) {
  const nwk = key(r.nwk_s_key, 'nwk_s_key')
  const app = key(r.app_s_key, 'app_s_key')
  const msb = fcntMSBytes(r.fcnt)
  const fctrl = r.fctrl ?? 0
  const fields = {
    MType: r.confirmed ? 'Confirmed Data Up' : 'Unconfirmed Data Up',
    DevAddr: bytes(r.dev_addr),
    FCtrl: {
      ADR: (fctrl & 0x80) !== 0,
      ADRACKReq: (fctrl & 0x40) !== 0,
      ACK: (fctrl & 0x20) !== 0,
      // lora-packet's name for 0x10; an uplink's ClassB bit.
      FPending: (fctrl & 0x10) !== 0
    },
    FCnt: r.fcnt & 0xffff,
    FOpts: bytes(r.fopts_hex),
    payload: bytes(r.payload_hex)
  }
  if (r.fport !== null && r.fport !== undefined) fields.FPort = r.fport
  const packet = lora.fromFields(fields, app, nwk, undefined, msb)
  if (packet.getFPort() === null) lora.recalculateMIC(packet, nwk, undefined, msb)
  return { phy_hex: packet.getPHYPayload().toString('hex') }
}

function decode (r) {
  const nwk = key(r.nwk_s_key, 'nwk_s_key')
  const app = key(r.app_s_key, 'app_s_key')
  const packet = lora.fromWire(bytes(r.phy_hex))
  const msb = fcntMSBytes(r.fcnt ?? packet.getFCnt())
  return {
    mic_ok: lora.verifyMIC(packet, nwk, undefined, msb),
    mtype: packet.getMType(),
    dev_addr: packet.DevAddr.toString('hex'),
    fcnt: packet.getFCnt(),
    fopts_hex: packet.FOpts.toString('hex'),
    fport: packet.getFPort(),
    payload_hex: lora.decrypt(packet, app, nwk, msb).toString('hex')
  }
}

const ops = { encode, decode }

const lines = readline.createInterface({ input: process.stdin, crlfDelay: Infinity })
for await (const line of lines) {
  if (line.trim() === '') continue
  let answer
  try {
    const request = JSON.parse(line)
    const op = ops[request.op]
    if (!op) throw new Error(`unknown op ${JSON.stringify(request.op)}`)
    answer = op(request)
  } catch (e) {
    answer = { error: String(e?.message ?? e) }
  }
  process.stdout.write(JSON.stringify(answer) + '\n')
}
