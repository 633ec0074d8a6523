// Decentlab DL-PM (particulate matter, temperature, humidity and pressure),
// LoRaWAN uplink, protocol version 2, as a codec in The Things Network's
// interface. The frame layout and output are those of lib/decentlab.js, which its
// mapping loads first (`libraries: [lib/decentlab.js]`).

var PM_SENSORS = [
  {
    words: 1,
    values: [
      decentlab.reading("battery_voltage", "Battery voltage", "V", function (x) {
        return x[0] / 1000;
      }),
    ],
  },
  {
    words: 10,
    values: [
      decentlab.reading("pm1_0_mass_concentration", "PM1.0 mass concentration", "µg⋅m⁻³", function (x) {
        return x[0] / 10;
      }),
      decentlab.reading("pm2_5_mass_concentration", "PM2.5 mass concentration", "µg⋅m⁻³", function (x) {
        return x[1] / 10;
      }),
      decentlab.reading("pm4_mass_concentration", "PM4 mass concentration", "µg⋅m⁻³", function (x) {
        return x[2] / 10;
      }),
      decentlab.reading("pm10_mass_concentration", "PM10 mass concentration", "µg⋅m⁻³", function (x) {
        return x[3] / 10;
      }),
      decentlab.reading("typical_particle_size", "Typical particle size", "nm", function (x) {
        return x[4];
      }),
      decentlab.reading("pm0_5_number_concentration", "PM0.5 number concentration", "1⋅cm⁻³", function (x) {
        return x[5] / 10;
      }),
      decentlab.reading("pm1_0_number_concentration", "PM1.0 number concentration", "1⋅cm⁻³", function (x) {
        return x[6] / 10;
      }),
      decentlab.reading("pm2_5_number_concentration", "PM2.5 number concentration", "1⋅cm⁻³", function (x) {
        return x[7] / 10;
      }),
      decentlab.reading("pm4_number_concentration", "PM4 number concentration", "1⋅cm⁻³", function (x) {
        return x[8] / 10;
      }),
      decentlab.reading("pm10_number_concentration", "PM10 number concentration", "1⋅cm⁻³", function (x) {
        return x[9] / 10;
      }),
    ],
  },
  {
    words: 2,
    values: [
      decentlab.reading("air_temperature", "Air temperature", "°C", function (x) {
        return (175.72 * x[0]) / 65536 - 46.85;
      }),
      decentlab.reading("air_humidity", "Air humidity", "%", function (x) {
        return (125 * x[1]) / 65536 - 6;
      }),
    ],
  },
  {
    words: 1,
    values: [
      decentlab.reading("barometric_pressure", "Barometric pressure", "Pa", function (x) {
        return x[0] * 2;
      }),
    ],
  },
];

function decodeUplink(input) {
  return decentlab.decode(input.bytes, "DL-PM", PM_SENSORS);
}
