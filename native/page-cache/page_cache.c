// recgw page-cache advice: the two Linux calls Node's fs does not offer, for write-once files.
//
// A recording is written once and read back once or twice soon after (hash, encode), so keeping
// it in the page cache only pushes out pages that matter and, on a machine that gives free
// memory back to its host (a VM with free page reporting), makes every written byte land in a
// page that must first be faulted in from the host. Starting writeback early and dropping the
// pages once they are clean keeps a recording's cache footprint to a few MiB that are reused.
//
// flushBehind runs on libuv's thread pool (both calls can wait on the block layer);
// dropCachedSync is for a thread of our own (the hash worker), never the event loop.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <node_api.h>

typedef struct {
  napi_async_work work;
  napi_ref callback;
  int fd;
  int64_t write_offset, write_length, drop_offset, drop_length;
  int error;
  const char* syscall;
} FlushJob;

static napi_value throw_type_error(napi_env env, const char* message) {
  napi_throw_type_error(env, NULL, message);
  return NULL;
}

// A whole, non-negative number of bytes that fits off_t; anything else is a caller's bug.
static int get_length(napi_env env, napi_value value, int64_t* out) {
  double d;
  if (napi_get_value_double(env, value, &d) != napi_ok) return 0;
  if (!(d >= 0 && d <= 9007199254740991.0) || d != (double)(int64_t)d) return 0;
  *out = (int64_t)d;
  return 1;
}

static int get_fd(napi_env env, napi_value value, int* out) {
  int64_t v;
  if (!get_length(env, value, &v) || v > 2147483647) return 0;
  *out = (int)v;
  return 1;
}

static void flush_execute(napi_env env, void* data) {
  (void)env;
  FlushJob* job = data;
  if (job->write_length > 0 &&
      sync_file_range(job->fd, job->write_offset, job->write_length, SYNC_FILE_RANGE_WRITE) != 0) {
    job->error = errno;
    job->syscall = "sync_file_range";
    return;
  }
  if (job->drop_length > 0) {
    int rc = posix_fadvise(job->fd, job->drop_offset, job->drop_length, POSIX_FADV_DONTNEED);
    if (rc != 0) {
      job->error = rc;
      job->syscall = "posix_fadvise";
    }
  }
}

static void flush_complete(napi_env env, napi_status status, void* data) {
  FlushJob* job = data;
  napi_value callback, undefined, arg;
  napi_get_undefined(env, &undefined);
  if (status == napi_ok && job->error == 0) {
    napi_get_null(env, &arg);
  } else {
    // An Error with Node's usual `code` and `syscall`, so the caller can tell EBADF from ESPIPE.
    napi_value message, code;
    const char* name = status == napi_ok ? job->syscall : "flushBehind";
    char text[160];
    int err = status == napi_ok ? job->error : ECANCELED;
    snprintf(text, sizeof text, "%s: %s", name, strerror(err));
    napi_create_string_utf8(env, text, NAPI_AUTO_LENGTH, &message);
    napi_create_error(env, NULL, message, &arg);
    const char* symbol = err == EBADF ? "EBADF" : err == ESPIPE ? "ESPIPE" : err == EINVAL ? "EINVAL" : err == EIO ? "EIO" : err == ECANCELED ? "ECANCELED" : "EOTHER";
    napi_create_string_utf8(env, symbol, NAPI_AUTO_LENGTH, &code);
    napi_set_named_property(env, arg, "code", code);
    napi_value syscall;
    napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &syscall);
    napi_set_named_property(env, arg, "syscall", syscall);
  }
  if (napi_get_reference_value(env, job->callback, &callback) == napi_ok && callback != NULL) {
    napi_call_function(env, undefined, callback, 1, &arg, NULL);
  }
  napi_delete_reference(env, job->callback);
  napi_delete_async_work(env, job->work);
  free(job);
}

// flushBehind(fd, writeOffset, writeLength, dropOffset, dropLength, callback(err))
// Starts writeback of [writeOffset, +writeLength) without waiting for it, then drops the clean
// pages of [dropOffset, +dropLength) from the page cache (dirty ones stay: nothing is lost).
static napi_value flush_behind(napi_env env, napi_callback_info info) {
  size_t argc = 6;
  napi_value argv[6];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 6) {
    return throw_type_error(env, "flushBehind(fd, writeOffset, writeLength, dropOffset, dropLength, callback)");
  }
  napi_valuetype type;
  napi_typeof(env, argv[5], &type);
  if (type != napi_function) return throw_type_error(env, "flushBehind: callback must be a function");
  FlushJob job = {0};
  if (!get_fd(env, argv[0], &job.fd)) return throw_type_error(env, "flushBehind: fd must be a file descriptor");
  if (!get_length(env, argv[1], &job.write_offset) || !get_length(env, argv[2], &job.write_length) ||
      !get_length(env, argv[3], &job.drop_offset) || !get_length(env, argv[4], &job.drop_length)) {
    return throw_type_error(env, "flushBehind: offsets and lengths must be whole numbers >= 0");
  }
  FlushJob* heap = malloc(sizeof *heap);
  if (heap == NULL) {
    napi_throw_error(env, "ENOMEM", "flushBehind: out of memory");
    return NULL;
  }
  *heap = job;
  napi_value name;
  napi_create_string_utf8(env, "recgw.flushBehind", NAPI_AUTO_LENGTH, &name);
  if (napi_create_reference(env, argv[5], 1, &heap->callback) != napi_ok ||
      napi_create_async_work(env, NULL, name, flush_execute, flush_complete, heap, &heap->work) != napi_ok ||
      napi_queue_async_work(env, heap->work) != napi_ok) {
    free(heap);
    napi_throw_error(env, NULL, "flushBehind: could not queue the work");
    return NULL;
  }
  return NULL;
}

// dropCachedSync(fd, offset, length): drops the clean cached pages of [offset, +length)
// (length 0: to the end of the file). Returns 0 or the errno. Blocks: a worker thread's call.
static napi_value drop_cached_sync(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  int fd;
  int64_t offset, length;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 3 || !get_fd(env, argv[0], &fd) ||
      !get_length(env, argv[1], &offset) || !get_length(env, argv[2], &length)) {
    return throw_type_error(env, "dropCachedSync(fd, offset, length): whole numbers >= 0");
  }
  int rc = posix_fadvise(fd, offset, length, POSIX_FADV_DONTNEED);
  napi_value result;
  napi_create_int32(env, rc, &result);
  return result;
}

// addressPhase(bytes): where `bytes` (any typed array or Buffer view) starts in memory, modulo
// 4096. Direct I/O reads straight from memory that must sit on the same 4096-byte grid as the
// file offsets it goes to (direct-write.ts); JavaScript cannot see an address, so it asks here.
static napi_value address_phase(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  bool is_typed = false;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1 ||
      napi_is_typedarray(env, argv[0], &is_typed) != napi_ok || !is_typed) {
    return throw_type_error(env, "addressPhase(bytes): a Buffer or typed array");
  }
  void* data = NULL;
  size_t length = 0;
  napi_typedarray_type kind;
  if (napi_get_typedarray_info(env, argv[0], &kind, &length, &data, NULL, NULL) != napi_ok) {
    return throw_type_error(env, "addressPhase(bytes): a Buffer or typed array");
  }
  napi_value result;
  napi_create_uint32(env, (uint32_t)((uintptr_t)data & 4095u), &result);
  return result;
}

NAPI_MODULE_INIT() {
  napi_value fn;
  napi_create_function(env, "flushBehind", NAPI_AUTO_LENGTH, flush_behind, NULL, &fn);
  napi_set_named_property(env, exports, "flushBehind", fn);
  napi_create_function(env, "dropCachedSync", NAPI_AUTO_LENGTH, drop_cached_sync, NULL, &fn);
  napi_set_named_property(env, exports, "dropCachedSync", fn);
  napi_create_function(env, "addressPhase", NAPI_AUTO_LENGTH, address_phase, NULL, &fn);
  napi_set_named_property(env, exports, "addressPhase", fn);
  return exports;
}
