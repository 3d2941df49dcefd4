const fs = require('fs');
const who = process.env.INPUT_WHO;
const times = Number(process.env.INPUT_TIMES);
for (let i = 0; i < times; i++) console.log(`hello ${who} #${i + 1} (node ${process.version})`);
console.log(`main: pre state prepared=${process.env.STATE_prepared}`);
fs.appendFileSync(process.env.GITHUB_OUTPUT, `said=hello ${who}\n`);
fs.appendFileSync(process.env.GITHUB_STATE, 'cleanup=needed\n');
console.log('::notice title=JS::greeted from a JavaScript action');
