import FuzzSupport

// Built before the first input, so no input is charged for it against the
// one-second limit.
_ = signer
runFuzzer { fuzzWire($0, $1) }
