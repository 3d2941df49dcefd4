export { pickNext, type Waiting, type Running, type SlotLimits, type LastStarted } from './pick-next';
export { hostCapacity } from './host-capacity';
