// line comment
/* block
   comment */
const re = /["`]+/g;
export async function greet(name, count = 3) {
  const text = `Hello ${name},
second line`;
  return count >= 1 && text !== null ? 'yes' : "no";
}
let $el = obj?.value ?? 0.5;
