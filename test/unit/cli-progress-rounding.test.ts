// qemu-img prints progress with printf("%.2f"), which rounds the exact binary value with ties to
// even: 3.125 (exact in binary) prints 3.12 where JavaScript's toFixed gives 3.13.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cFixed2 } from '../../core/cli/progress.ts';

test('progress percentages round as printf("%.2f") does', () => {
  assert.equal(cFixed2(3.125), '3.12'); // a tie: to even
  assert.equal(cFixed2(15.625), '15.62');
  assert.equal(cFixed2(78.375), '78.38'); // a tie: to even, up
  assert.equal(cFixed2(Math.fround(200 / 3)), '66.67');
  assert.equal(cFixed2(1.005), '1.00'); // 1.005 is below the tie in binary (toFixed agrees)
  assert.equal(cFixed2(0), '0.00');
  assert.equal(cFixed2(100), '100.00');
});
