require "json"
# A comment line
=begin
a block comment
=end
class Parser
  def parse?(text, limit = 10)
    @count += 1
    body = <<~EOS
      heredoc body
    EOS
    return nil unless text
    text.strip.empty? ? 'blank' : "#{body}"
  end
end
