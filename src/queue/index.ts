export { pickNext, type Waiting, type Running, type SlotLimits, type LastStarted } from './pick-next';
export { hostCapacity } from './host-capacity';
export { nextAttempt, DEFAULT_BACKOFF, type BackoffPolicy } from './github-backoff';
export { interleaveByRepository } from './interleave';
export { exhaustedMinutes, burstAllows, type MinutesLimit, type MinutesUsed, type MinutesPort } from './minutes-quota';
