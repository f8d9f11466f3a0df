#include <vector>
namespace demo {
template <typename T>
class Box final {
 public:
  explicit Box(T v) : value_(v) {}
  auto raw() const -> const char* { return R"x(a "quoted" ) text)x"; }
 private:
  T value_{};  // stored
};
}  // namespace demo
