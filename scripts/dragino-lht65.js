// Dragino LHT65 temperature and humidity sensor, LoRaWAN uplink on port 2, as a
// codec in The Things Network's interface (decodeUplink). The same frames and
// output as dragino-lht65.rhai:
//
// 11 bytes: [0-1] battery: top 2 bits status, low 14 bits mV; [2-3] SHT20
// temperature i16 /100 °C; [4-5] SHT20 humidity, low 12 bits /10 %RH;
// [6] external sensor kind (low nibble) and flags; [7-10] the external
// sensor's reading. Field names follow the vendor's decoder (BatV, TempC_SHT...).
// Another port gives the error "unknown FPort".

function u16(b, i) {
  return (b[i] << 8) | b[i + 1];
}

function i16(b, i) {
  var v = u16(b, i);
  return v > 0x7fff ? v - 0x10000 : v;
}

function u32(b, i) {
  return u16(b, i) * 0x10000 + u16(b, i + 2);
}

function hexByte(x) {
  return (x < 16 ? "0" : "") + x.toString(16);
}

var WORK_MODES = {
  0: ["Ext_sensor", "No external sensor"],
  1: ["Ext_sensor", "Temperature Sensor"],
  4: ["Work_mode", "Interrupt Sensor send"],
  5: ["Work_mode", "Illumination Sensor"],
  6: ["Work_mode", "ADC Sensor"],
  7: ["Work_mode", "Interrupt Sensor count"],
  8: ["Work_mode", "Interrupt Sensor count"],
  9: ["Work_mode", "DS18B20 & timestamp"],
  15: ["Work_mode", "DS18B20ID"],
};

function decodeUplink(input) {
  if (input.fPort !== 2) {
    return { errors: ["LHT65: unknown FPort " + input.fPort] };
  }
  var b = input.bytes;
  if (b.length !== 11) {
    return { errors: ["LHT65: payload is " + b.length + " bytes, expected 11"] };
  }
  var ext = b[6] & 0x0f;
  var d = {};
  if (ext === 9) {
    d.TempC_DS = i16(b, 0) / 100;
    d.Bat_status = b[4] >> 6;
  } else {
    d.BatV = (u16(b, 0) & 0x3fff) / 1000;
    d.Bat_status = b[0] >> 6;
  }
  if (ext !== 15) {
    d.TempC_SHT = i16(b, 2) / 100;
    d.Hum_SHT = (u16(b, 4) & 0x0fff) / 10;
  }
  if (b[6] & 0x80) {
    d.No_connect = "Sensor no connection";
  }
  var mode = WORK_MODES[ext];
  if (mode) {
    d[mode[0]] = mode[1];
  }
  switch (ext) {
    case 1:
      d.TempC_DS = i16(b, 7) / 100;
      break;
    case 4:
      d.Exti_pin_level = b[7] ? "High" : "Low";
      d.Exti_status = b[8] ? "True" : "False";
      break;
    case 5:
      d.ILL_lx = u16(b, 7);
      break;
    case 6:
      d.ADC_V = u16(b, 7) / 1000;
      break;
    case 7:
      d.Exit_count = u16(b, 7);
      break;
    case 8:
      d.Exit_count = u32(b, 7);
      break;
    case 9:
      d.Systimestamp = u32(b, 7);
      break;
    case 15:
      // Each byte's two hex digits and a space, as the vendor's decoder writes it.
      d.ID = [2, 3, 4, 5, 7, 8, 9, 10]
        .map(function (i) {
          return hexByte(b[i]) + " ";
        })
        .join("");
      break;
  }
  return { data: d };
}
