package main

// Sum adds numbers.
func Sum(values ...int) (total int, err error) {
	raw := `a "raw"
string`
	for _, v := range values {
		total += v /* inline */
	}
	return total, nil
}
