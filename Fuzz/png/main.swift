import FuzzSupport

runFuzzer { fuzzPNG($0, $1) }
