// Decentlab LoRaWAN sensors, protocol version 2: the decoder every model shares,
// loaded before a model's codec (a mapping's `libraries: [lib/decentlab.js]`).
// The same frames and output as lib/decentlab.rhai:
//
// [0] protocol version (2); [1-2] device id u16 BE; [3-4] flags u16 BE, bit k
// set when sensor k's words follow; then, for each present sensor in order, its
// 16-bit big-endian words. A model is a table of sensors, each
// `{ words, values: [reading(...), ...] }`; a reading converts the sensor's words
// `x` with its function and is published as {displayName, value, unit} under its
// name (no `unit` key where the vendor gives none). Another protocol version or
// a cut-off payload gives an error naming the model.

var decentlab = {
  reading: function (name, displayName, unit, convert) {
    return { name: name, displayName: displayName, unit: unit, convert: convert };
  },

  // `{data}` or `{errors}` of a frame of model `model` (e.g. "DL-PM").
  decode: function (b, model, sensors) {
    var word = function (i) {
      return (b[i] << 8) | b[i + 1];
    };
    if (b.length < 5) {
      return { errors: [model + ": payload is " + b.length + " bytes, the header alone needs 5"] };
    }
    if (b[0] !== 2) {
      return { errors: [model + ": protocol version " + b[0] + " doesn't match v2"] };
    }
    var d = { protocol_version: b[0], device_id: word(1) };
    var flags = word(3);
    var pos = 5;
    for (var s = 0; s < sensors.length; s++, flags >>= 1) {
      if ((flags & 1) !== 1) {
        continue;
      }
      var sensor = sensors[s];
      if (pos + 2 * sensor.words > b.length) {
        return {
          errors: [
            model + ": sensor words at byte " + pos + " need " + 2 * sensor.words +
              " bytes, " + (b.length - pos) + " present",
          ],
        };
      }
      var x = [];
      for (var j = 0; j < sensor.words; j++, pos += 2) {
        x.push(word(pos));
      }
      sensor.values.forEach(function (v) {
        var r = { displayName: v.displayName, value: v.convert(x) };
        if (v.unit !== undefined) {
          r.unit = v.unit;
        }
        d[v.name] = r;
      });
    }
    return { data: d };
  },
};
