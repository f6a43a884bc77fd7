import FuzzSupport

// Built before the first input, so no input is charged for it against the
// one-second limit.
_ = tokenizer
runFuzzer { fuzzTokenizer($0, $1) }
