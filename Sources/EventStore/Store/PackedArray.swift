import Foundation
import NIOCore
import PostgresNIO

/// An array bound in PostgreSQL's binary array format, written element by element in one pass.
/// PostgresNIO's own array encoding is generic across modules, with type-metadata lookups for every
/// element; for the group commit's nine arrays per batch it was about 5% of the writer's CPU.
public struct PackedArray<Element: PackedArrayElement>: PostgresNonThrowingEncodable {
    public var elements: [Element]

    public init(_ elements: [Element]) { self.elements = elements }

    public static var psqlType: PostgresDataType { Element.arrayType }
    public static var psqlFormat: PostgresFormat { .binary }

    public func encode<JSONEncoder: PostgresJSONEncoder>(into buffer: inout ByteBuffer, context: PostgresEncodingContext<JSONEncoder>) {
        // Header: dimensions, has-NULLs flag (set once an element turns out NULL), element type; then
        // each dimension's length and lower bound.
        buffer.writeInteger(Int32(elements.isEmpty ? 0 : 1))
        let nullsFlag = buffer.writerIndex
        buffer.writeInteger(Int32(0))
        buffer.writeInteger(Element.elementType.rawValue)
        if elements.isEmpty { return }
        buffer.writeInteger(Int32(elements.count))
        buffer.writeInteger(Int32(1))
        var hasNulls = false
        for element in elements {
            hasNulls = hasNulls || element.isNull
            element.writePacked(into: &buffer)
        }
        if hasNulls { buffer.setInteger(Int32(1), at: nullsFlag) }
    }
}

/// An element of a `PackedArray`: its types and its length-prefixed binary form.
public protocol PackedArrayElement: Sendable {
    static var elementType: PostgresDataType { get }
    static var arrayType: PostgresDataType { get }
    /// True for a NULL element (an optional's nil), written as length -1.
    var isNull: Bool { get }
    func writePacked(into buffer: inout ByteBuffer)
}

extension PackedArrayElement {
    public var isNull: Bool { false }
}

extension Optional: PackedArrayElement where Wrapped: PackedArrayElement {
    public static var elementType: PostgresDataType { Wrapped.elementType }
    public static var arrayType: PostgresDataType { Wrapped.arrayType }
    public var isNull: Bool { self == nil }
    public func writePacked(into buffer: inout ByteBuffer) {
        if let value = self { value.writePacked(into: &buffer) } else { buffer.writeInteger(Int32(-1)) }
    }
}

extension PackedArrayElement where Self: FixedWidthInteger {
    public func writePacked(into buffer: inout ByteBuffer) {
        buffer.writeInteger(Int32(MemoryLayout<Self>.size))
        buffer.writeInteger(self)
    }
}

extension Int64: PackedArrayElement {
    public static var elementType: PostgresDataType { .int8 }
    public static var arrayType: PostgresDataType { .int8Array }
}

extension Int32: PackedArrayElement {
    public static var elementType: PostgresDataType { .int4 }
    public static var arrayType: PostgresDataType { .int4Array }
}

extension String: PackedArrayElement {
    public static var elementType: PostgresDataType { .text }
    public static var arrayType: PostgresDataType { .textArray }
    public func writePacked(into buffer: inout ByteBuffer) {
        buffer.writeInteger(Int32(utf8.count))
        buffer.writeString(self)
    }
}

extension UUID: PackedArrayElement {
    public static var elementType: PostgresDataType { .uuid }
    public static var arrayType: PostgresDataType { .uuidArray }
    public func writePacked(into buffer: inout ByteBuffer) {
        buffer.writeInteger(Int32(16))
        _ = withUnsafeBytes(of: uuid) { buffer.writeBytes($0) }
    }
}

extension PostgresBindings {
    /// Bindings of `values` in order, `nil` as NULL: the whole of a prepared statement's `makeBindings`.
    public static func of(_ values: (any PostgresDynamicTypeEncodable)?...) -> PostgresBindings {
        var bindings = PostgresBindings(capacity: values.count)
        for value in values {
            if let value { bindings.append(value) } else { bindings.appendNull() }
        }
        return bindings
    }
}
