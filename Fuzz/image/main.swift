import FuzzSupport

runFuzzer { fuzzImage($0, $1) }
