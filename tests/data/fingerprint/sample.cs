using System;
namespace Demo {
    public sealed class Greeter {
        // a comment
        public string Greet(string name) {
            var path = @"C:\temp\""file""";
            var text = $"Hello {name}";
            return name is null ? path : text + '!';
        }
    }
}
