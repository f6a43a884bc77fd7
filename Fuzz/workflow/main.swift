import FuzzSupport

// Built before the first input, so no input is charged for it against the
// one-second limit.
_ = validator
runFuzzer { fuzzWorkflow($0, $1) }
