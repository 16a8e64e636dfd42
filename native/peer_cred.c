// peerCred(fd) -> { pid, uid, gid }: the credentials the kernel recorded for
// the process at the other end of a connected unix socket (SO_PEERCRED).
// Node exposes no getsockopt; the Workload API attests callers from this pid.
// A target of its own so it loads without libbpf.
#define _GNU_SOURCE
#define NAPI_VERSION 8
#include <node_api.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

static napi_value peer_cred(napi_env env, napi_callback_info info)
{
	size_t argc = 1;
	napi_value argv[1], out, v;
	int32_t fd;
	if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1 ||
	    napi_get_value_int32(env, argv[0], &fd) != napi_ok || fd < 0) {
		napi_throw_type_error(env, NULL, "peerCred(fd): fd must be a non-negative integer");
		return NULL;
	}
	struct ucred cred;
	socklen_t len = sizeof(cred);
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len)) {
		char msg[128];
		snprintf(msg, sizeof(msg), "getsockopt(SO_PEERCRED): %s (errno %d)", strerror(errno), errno);
		napi_throw_error(env, NULL, msg);
		return NULL;
	}
	napi_create_object(env, &out);
	napi_create_int32(env, cred.pid, &v);
	napi_set_named_property(env, out, "pid", v);
	napi_create_uint32(env, cred.uid, &v);
	napi_set_named_property(env, out, "uid", v);
	napi_create_uint32(env, cred.gid, &v);
	napi_set_named_property(env, out, "gid", v);
	return out;
}

static napi_value init(napi_env env, napi_value exports)
{
	napi_value f;
	napi_create_function(env, "peerCred", NAPI_AUTO_LENGTH, peer_cred, NULL, &f);
	napi_set_named_property(env, exports, "peerCred", f);
	return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
