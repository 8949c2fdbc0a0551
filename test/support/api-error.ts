import { strict as assert } from "node:assert";
import { ApiError } from "../../src/sandbox/apiserver/types.js";

/** Runs `fn`, which must throw an ApiError, and returns that error for the test to inspect. */
export function apiError(fn: () => unknown): ApiError {
  try {
    fn();
  } catch (error) {
    if (error instanceof ApiError) return error;
    throw error;
  }
  assert.fail("expected an ApiError");
}
