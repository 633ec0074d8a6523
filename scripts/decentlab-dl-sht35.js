// Decentlab DL-SHT35 (air temperature and humidity), LoRaWAN uplink, protocol
// version 2, as a codec in The Things Network's interface. The frame layout and
// output are those of lib/decentlab.js, which its mapping loads first
// (`libraries: [lib/decentlab.js]`).

var SHT35_SENSORS = [
  {
    words: 2,
    values: [
      decentlab.reading("air_temperature", "Air temperature", "°C", function (x) {
        return (175 * x[0]) / 65535 - 45;
      }),
      decentlab.reading("air_humidity", "Air humidity", "%", function (x) {
        return (100 * x[1]) / 65535;
      }),
    ],
  },
  {
    words: 1,
    values: [
      decentlab.reading("battery_voltage", "Battery voltage", "V", function (x) {
        return x[0] / 1000;
      }),
    ],
  },
];

function decodeUplink(input) {
  return decentlab.decode(input.bytes, "DL-SHT35", SHT35_SENSORS);
}
