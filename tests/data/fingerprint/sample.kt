package demo
// comment
data class User(val name: String, var age: Int = 0) {
    fun greet(): String {
        val block = """
            Hi ${name}!
        """
        return if (age >= 18) "adult" else block.trim() + 'c'
    }
}
