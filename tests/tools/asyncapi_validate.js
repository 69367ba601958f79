// Validates an AsyncAPI document with the official parser (@asyncapi/parser): exit 0 when it parses
// without errors, 1 otherwise; prints every diagnostic as one JSON line.
const { Parser } = require('@asyncapi/parser');
const fs = require('fs');

(async () => {
  const parser = new Parser();
  const { document, diagnostics } = await parser.parse(fs.readFileSync(process.argv[2], 'utf8'));
  for (const d of diagnostics) {
    console.log(JSON.stringify({ severity: d.severity, code: d.code, message: d.message, path: d.path }));
  }
  const errors = diagnostics.filter((d) => d.severity === 0);
  process.exit(document && errors.length === 0 ? 0 : 1);
})();
