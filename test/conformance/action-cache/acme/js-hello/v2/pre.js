const fs = require('fs');
console.log(`pre: preparing for ${process.env.INPUT_WHO}`);
fs.appendFileSync(process.env.GITHUB_STATE, 'prepared=yes\n');
