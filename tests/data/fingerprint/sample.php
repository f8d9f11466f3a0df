<?php
namespace App;
// line comment
# hash comment
function total(array $items): int {
    $sum = 0; /* block */
    foreach ($items as $item) { $sum += $item->price; }
    $text = <<<EOT
heredoc $sum
EOT;
    return $sum > 100 ? TRUE : False;
}
