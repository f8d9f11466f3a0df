import Foundation
/* block comment */
struct Counter {
    private(set) var value: Int = 0  // stored
    mutating func increment(by step: Int = 1) -> Int {
        let note = """
        multi-line
        """
        value += step
        return value > 10 ? value : note.count
    }
}
