import FuzzSupport

runFuzzer { fuzzSafeTensors($0, $1) }
