// One error type and one Result<T> for the whole code base. An Error carries
// a positive errno (0 when none applies) and a message with context.
#pragma once

#include <cerrno>
#include <string>
#include <utility>
#include <variant>

#include <fmt/format.h>

namespace bpfgate {

class Error {
 public:
  Error(int err, std::string message) : errno_(err), message_(std::move(message)) {}

  int err() const { return errno_; }
  const std::string &message() const { return message_; }
  // "context: message (strerror)" when an errno is set.
  std::string what() const;
  // Prefixes context: "attach veth0: " + message.
  Error context(const std::string &ctx) const { return Error(errno_, ctx + ": " + message_); }

 private:
  int errno_;
  std::string message_;
};

template <class... Args>
Error make_error(int err, fmt::format_string<Args...> f, Args &&...args) {
  return Error(err, fmt::format(f, std::forward<Args>(args)...));
}

template <class T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}
  Result(Error error) : v_(std::move(error)) {}

  bool ok() const { return std::holds_alternative<T>(v_); }
  explicit operator bool() const { return ok(); }
  T &value() & { return std::get<T>(v_); }
  const T &value() const & { return std::get<T>(v_); }
  T &&value() && { return std::get<T>(std::move(v_)); }
  T &operator*() & { return value(); }
  const T &operator*() const & { return value(); }
  T &&operator*() && { return std::move(*this).value(); }
  T *operator->() { return &value(); }
  const T *operator->() const { return &value(); }
  const Error &error() const { return std::get<Error>(v_); }

 private:
  std::variant<T, Error> v_;
};

template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error error) : err_(std::move(error)), ok_(false) {}

  bool ok() const { return ok_; }
  explicit operator bool() const { return ok_; }
  const Error &error() const { return err_; }

 private:
  Error err_{0, ""};
  bool ok_ = true;
};

using Status = Result<void>;

}  // namespace bpfgate
