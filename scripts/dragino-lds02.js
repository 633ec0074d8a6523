// Dragino LDS02 door sensor, LoRaWAN uplink on port 10, as a codec in The Things
// Network's interface (decodeUplink). The same frames and output as
// dragino-lds02.rhai:
//
// 10 bytes: [0-1] bit 15 door open, bit 14 water leak, low 14 bits battery mV;
// [2] mode; [3-5] count u24 and [6-8] last duration u24 (minutes): door openings
// in mode 1, water leaks in mode 2; [9] bit 0 alarm. Field names follow the
// vendor's decoder. A shorter payload is read as if zero-padded to 10 bytes, as
// the vendor's decoder does. Another port gives the error "unknown FPort".

function decodeUplink(input) {
  if (input.fPort !== 10) {
    return { errors: ["LDS02: unknown FPort " + input.fPort] };
  }
  var b = input.bytes.slice();
  if (b.length < 3) {
    return { errors: ["LDS02: payload is " + b.length + " bytes, at least 3 are needed"] };
  }
  if (b.length > 10) {
    return { errors: ["LDS02: payload is " + b.length + " bytes, at most 10 expected"] };
  }
  while (b.length < 10) {
    b.push(0);
  }
  var u24 = function (i) {
    return (b[i] << 16) | (b[i + 1] << 8) | b[i + 2];
  };
  var mode = b[2];
  var d = { BAT_V: (((b[0] << 8) | b[1]) & 0x3fff) / 1000, MOD: mode };
  var door = (b[0] >> 7) & 1;
  var leak = (b[0] >> 6) & 1;
  var alarm = b[9] & 1;
  if (mode === 1) {
    d.DOOR_OPEN_STATUS = door;
    d.DOOR_OPEN_TIMES = u24(3);
    d.LAST_DOOR_OPEN_DURATION = u24(6);
    d.ALARM = alarm;
  } else if (mode === 2) {
    d.WATER_LEAK_STATUS = leak;
    d.WATER_LEAK_TIMES = u24(3);
    d.LAST_WATER_LEAK_DURATION = u24(6);
  } else if (mode === 3) {
    d.DOOR_OPEN_STATUS = door;
    d.WATER_LEAK_STATUS = leak;
    d.ALARM = alarm;
  }
  return { data: d };
}
