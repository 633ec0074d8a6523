// Evaluated before a codec's files: fences the clock and defines the entry points
// mqgate calls (fixed: a codec cannot replace them). The codec sees time stand still at the frame's receive time:
// `Date.now()` and `new Date()` give it, never the machine's clock.
(function () {
  "use strict";
  var RealDate = Date;
  var now = NaN;
  function FencedDate() {
    if (!new.target) {
      return new RealDate(now).toString();
    }
    if (arguments.length === 0) {
      return new RealDate(now);
    }
    var args = [null];
    for (var i = 0; i < arguments.length; i++) {
      args.push(arguments[i]);
    }
    return new (Function.prototype.bind.apply(RealDate, args))();
  }
  FencedDate.prototype = RealDate.prototype;
  FencedDate.UTC = RealDate.UTC;
  FencedDate.parse = RealDate.parse;
  FencedDate.now = function () {
    return now;
  };
  Object.defineProperty(RealDate.prototype, "constructor", {
    value: FencedDate,
    writable: true,
    configurable: true,
  });
  globalThis.Date = FencedDate;

  function entry(name) {
    return function (json, received_ms) {
      now = received_ms;
      var input = JSON.parse(json);
      if (input.recvTime !== undefined) {
        input.recvTime = new RealDate(received_ms);
      }
      var f = globalThis[name];
      if (typeof f !== "function") {
        throw new TypeError(name + " is not a function");
      }
      var out = f(input);
      return JSON.stringify(out === undefined ? null : out);
    };
  }
  var fixed = { writable: false, enumerable: false, configurable: false };
  fixed.value = entry("decodeUplink");
  Object.defineProperty(globalThis, "__mqgate_decode", fixed);
  fixed.value = entry("encodeDownlink");
  Object.defineProperty(globalThis, "__mqgate_encode", fixed);
})();
