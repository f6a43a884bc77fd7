import SafeTensors

extension Tensor {
    /// Loads tensor `name` from a safetensors file, widened to Float32.
    public init(_ file: SafeTensorsFile, _ name: String) throws {
        let info = try file.info(name)
        self.init(shape: info.shape, values: try file.floats(name))
    }
}

extension SafeTensorsWriter {
    /// Adds `tensor` (host values) under `name`, narrowed to `dtype`.
    public mutating func add(_ name: String, _ tensor: Tensor, dtype: SafeTensorsDType = .F32) throws {
        try add(name, shape: tensor.shape, floats: tensor.scalars, dtype: dtype)
    }
}
