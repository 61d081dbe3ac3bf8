// The titan-pm worker of the benchmark: one trivial method.
const { Process, Public } = require('../../../node');

class Echo {
  ping(x) {
    return x;
  }
}
Public()(Echo.prototype.ping, { kind: 'method', name: 'ping' });
Process({ name: 'echo' })(Echo, { kind: 'class', name: 'Echo' });
module.exports = Echo;
