// piscina's worker: the same trivial function.
module.exports = (x) => x;
