console.log(`post: cleanup=${process.env.STATE_cleanup} prepared=${process.env.STATE_prepared}`);
