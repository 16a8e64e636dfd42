// N-API addon over libbpf: load BPF objects with pinned maps, attach
// programs through pinned bpf_links (so attachments outlive the agent and a
// restart adopts them instead of attaching twice), and operate on maps.
// Keys and values cross as Buffers; src/redirect/bpf.ts gives them types.
#define NAPI_VERSION 8
#include <node_api.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#define MAX_OBJECTS 64
#define MAX_REPLACED 16
static struct bpf_object *objects[MAX_OBJECTS];
/* Per object: maps loaded fresh because the map pinned under their name no longer fits the object. */
static char replaced[MAX_OBJECTS][MAX_REPLACED][64];

static napi_value throw_errno(napi_env env, const char *what, int err)
{
	char msg[512], text[256];
	if (err < 0)
		err = -err;
	/* libbpf's own codes (4000 and up) have no strerror text; it knows them. */
	if (libbpf_strerror(err, text, sizeof(text)) < 0)
		snprintf(text, sizeof(text), "%s", strerror(err));
	snprintf(msg, sizeof(msg), "%s: %s (errno %d)", what, text, err);
	napi_throw_error(env, NULL, msg);
	return NULL;
}

static int get_string(napi_env env, napi_value v, char *buf, size_t len)
{
	size_t n;
	return napi_get_value_string_utf8(env, v, buf, len, &n) == napi_ok ? 0 : -1;
}

static int get_args(napi_env env, napi_callback_info info, size_t want, napi_value *argv)
{
	size_t argc = want;
	if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < want) {
		napi_throw_type_error(env, NULL, "missing arguments");
		return -1;
	}
	return 0;
}

static napi_value make_int(napi_env env, int64_t v)
{
	napi_value out;
	napi_create_int64(env, v, &out);
	return out;
}

static struct bpf_object *object_arg(napi_env env, napi_value v)
{
	int32_t h;
	if (napi_get_value_int32(env, v, &h) != napi_ok || h < 0 || h >= MAX_OBJECTS || !objects[h]) {
		napi_throw_error(env, NULL, "not an open BPF object handle");
		return NULL;
	}
	return objects[h];
}

static int libbpf_quiet(enum libbpf_print_level level, const char *fmt, va_list args)
{
	/* Warnings and errors go to stderr; debug chatter does not. */
	if (level == LIBBPF_DEBUG)
		return 0;
	return vfprintf(stderr, fmt, args);
}

/*
 * Whether the map pinned at `pin` can stand in for `map`, as libbpf judges
 * reuse; a pin that is missing or not a map counts as compatible, so that
 * libbpf makes the decision (and the error) itself.
 */
static bool pinned_map_fits(struct bpf_map *map, const char *pin)
{
	int fd = bpf_obj_get(pin);
	if (fd < 0)
		return true;
	struct bpf_map_info info = {};
	__u32 len = sizeof(info);
	int rc = bpf_obj_get_info_by_fd(fd, &info, &len);
	close(fd);
	if (rc)
		return true;
	return info.type == bpf_map__type(map) && info.key_size == bpf_map__key_size(map) && info.value_size == bpf_map__value_size(map) &&
	       info.max_entries == bpf_map__max_entries(map) && info.map_flags == bpf_map__map_flags(map);
}

/*
 * openObject(path, pinRoot, replaceChanged?) -> handle. Maps marked for
 * pinning are reused from pinRoot when present. With replaceChanged, a pinned
 * map whose definition differs from the object's (an upgrade changed it) is
 * left alone: the object gets a fresh, unpinned map instead, named by
 * replacedMaps(), for the caller to fill and swap in once the programs have
 * moved over. Without it, such a map fails the load, as libbpf has it.
 */
static napi_value open_object(napi_env env, napi_callback_info info)
{
	napi_value argv[3];
	char path[4096], pin_root[4096];
	bool replace_changed = false;
	size_t argc = 3;
	if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 2) {
		napi_throw_type_error(env, NULL, "missing arguments");
		return NULL;
	}
	if (get_string(env, argv[0], path, sizeof(path)) || get_string(env, argv[1], pin_root, sizeof(pin_root)))
		return NULL;
	if (argc > 2)
		napi_get_value_bool(env, argv[2], &replace_changed);
	int slot = -1;
	for (int i = 0; i < MAX_OBJECTS; i++)
		if (!objects[i]) {
			slot = i;
			break;
		}
	if (slot < 0)
		return throw_errno(env, "openObject: too many open objects", EMFILE);
	LIBBPF_OPTS(bpf_object_open_opts, opts, .pin_root_path = pin_root);
	struct bpf_object *obj = bpf_object__open_file(path, &opts);
	if (!obj)
		return throw_errno(env, "openObject: open", errno);
	memset(replaced[slot], 0, sizeof(replaced[slot]));
	int n = 0;
	struct bpf_map *map;
	bpf_object__for_each_map(map, obj)
	{
		const char *pin = bpf_map__pin_path(map);
		if (!replace_changed || !pin || pinned_map_fits(map, pin))
			continue;
		if (n == MAX_REPLACED) {
			bpf_object__close(obj);
			return throw_errno(env, "openObject: too many changed maps", E2BIG);
		}
		snprintf(replaced[slot][n++], sizeof(replaced[slot][0]), "%s", bpf_map__name(map));
		bpf_map__set_pin_path(map, NULL);
	}
	int err = bpf_object__load(obj);
	if (err) {
		bpf_object__close(obj);
		return throw_errno(env, "openObject: load (verifier or map mismatch; see stderr)", err);
	}
	objects[slot] = obj;
	return make_int(env, slot);
}

static napi_value close_object(napi_env env, napi_callback_info info)
{
	napi_value argv[1];
	int32_t h;
	if (get_args(env, info, 1, argv) || !object_arg(env, argv[0]))
		return NULL;
	napi_get_value_int32(env, argv[0], &h);
	bpf_object__close(objects[h]);
	objects[h] = NULL;
	return NULL;
}

/* replacedMaps(handle) -> names of the maps openObject made fresh rather than reuse from their pins */
static napi_value replaced_maps(napi_env env, napi_callback_info info)
{
	napi_value argv[1], out, name;
	int32_t h;
	if (get_args(env, info, 1, argv) || !object_arg(env, argv[0]))
		return NULL;
	napi_get_value_int32(env, argv[0], &h);
	napi_create_array(env, &out);
	for (uint32_t i = 0; i < MAX_REPLACED && replaced[h][i][0]; i++) {
		napi_create_string_utf8(env, replaced[h][i], NAPI_AUTO_LENGTH, &name);
		napi_set_element(env, out, i, name);
	}
	return out;
}

static struct bpf_program *program_arg(napi_env env, struct bpf_object *obj, napi_value v)
{
	char name[256];
	if (get_string(env, v, name, sizeof(name)))
		return NULL;
	struct bpf_program *prog = bpf_object__find_program_by_name(obj, name);
	if (!prog) {
		char msg[300];
		snprintf(msg, sizeof(msg), "no program named %s in the object", name);
		napi_throw_error(env, NULL, msg);
	}
	return prog;
}

/*
 * Makes `prog` the program behind the link pinned at linkPin, creating the link
 * with `attach` if there is none. Returns 1 when an existing link was adopted.
 */
static int pin_or_adopt(napi_env env, struct bpf_program *prog, const char *link_pin, struct bpf_link *(*attach)(struct bpf_program *, int), int target, int *adopted)
{
	/* Look before opening: libbpf logs a failed open, and a fresh start has no pins. */
	struct bpf_link *link = access(link_pin, F_OK) == 0 ? bpf_link__open(link_pin) : NULL;
	if (link) {
		int err = bpf_link__update_program(link, prog);
		bpf_link__disconnect(link);
		bpf_link__destroy(link);
		if (err) {
			throw_errno(env, "attach: updating the pinned link", err);
			return -1;
		}
		*adopted = 1;
		return 0;
	}
	link = attach(prog, target);
	if (!link) {
		throw_errno(env, "attach", errno);
		return -1;
	}
	int err = bpf_link__pin(link, link_pin);
	if (err) {
		bpf_link__destroy(link);
		throw_errno(env, "attach: pinning the link", err);
		return -1;
	}
	/* The pin holds the attachment now; dropping our fd must not detach it. */
	bpf_link__disconnect(link);
	bpf_link__destroy(link);
	*adopted = 0;
	return 0;
}

static struct bpf_link *attach_cgroup(struct bpf_program *prog, int cgroup_fd)
{
	return bpf_program__attach_cgroup(prog, cgroup_fd);
}

/*
 * TCX (kernel 6.6+) through the raw link API: Debian 12's libbpf 1.1 predates
 * bpf_program__attach_tcx, and its uapi headers predate the attach types.
 */
#define SLUICE_BPF_TCX_INGRESS 46
#define SLUICE_BPF_TCX_EGRESS 47

/*
 * The link is pinned straight from its fd: libbpf 1.1 cannot wrap a raw link
 * fd in a bpf_link (bpf_link__open wants a bpffs path, and /proc/self/fd is not one).
 */
static int attach_tcx_pinned(napi_env env, struct bpf_program *prog, int ifindex, bool egress, const char *link_pin)
{
	int fd = bpf_link_create(bpf_program__fd(prog), ifindex, egress ? SLUICE_BPF_TCX_EGRESS : SLUICE_BPF_TCX_INGRESS, NULL);
	if (fd < 0) {
		throw_errno(env, "attach", errno);
		return -1;
	}
	int err = bpf_obj_pin(fd, link_pin) ? errno : 0;
	/* Pinned, the attachment outlives this fd; unpinned, closing it detaches. */
	close(fd);
	if (err) {
		throw_errno(env, "attach: pinning the link", err);
		return -1;
	}
	return 0;
}

/* attachCgroup(handle, program, cgroupDir, linkPin) -> adopted */
static napi_value attach_cgroup_js(napi_env env, napi_callback_info info)
{
	napi_value argv[4];
	char cg[4096], pin[4096];
	if (get_args(env, info, 4, argv))
		return NULL;
	struct bpf_object *obj = object_arg(env, argv[0]);
	if (!obj)
		return NULL;
	struct bpf_program *prog = program_arg(env, obj, argv[1]);
	if (!prog || get_string(env, argv[2], cg, sizeof(cg)) || get_string(env, argv[3], pin, sizeof(pin)))
		return NULL;
	int fd = open(cg, O_RDONLY | O_DIRECTORY);
	if (fd < 0)
		return throw_errno(env, "attachCgroup: open cgroup", errno);
	int adopted = 0;
	int rc = pin_or_adopt(env, prog, pin, attach_cgroup, fd, &adopted);
	close(fd);
	if (rc)
		return NULL;
	napi_value out;
	napi_get_boolean(env, adopted, &out);
	return out;
}

/* attachTcx(handle, program, ifindex, linkPin, egress) -> adopted */
static napi_value attach_tcx_js(napi_env env, napi_callback_info info)
{
	napi_value argv[5];
	char pin[4096];
	int32_t ifindex;
	bool egress = false;
	if (get_args(env, info, 5, argv))
		return NULL;
	napi_get_value_bool(env, argv[4], &egress);
	struct bpf_object *obj = object_arg(env, argv[0]);
	if (!obj)
		return NULL;
	struct bpf_program *prog = program_arg(env, obj, argv[1]);
	if (!prog || napi_get_value_int32(env, argv[2], &ifindex) != napi_ok || get_string(env, argv[3], pin, sizeof(pin)))
		return NULL;
	int adopted = access(pin, F_OK) == 0;
	if (adopted) {
		struct bpf_link *link = bpf_link__open(pin);
		int err = link ? bpf_link__update_program(link, prog) : -errno;
		if (link) {
			bpf_link__disconnect(link);
			bpf_link__destroy(link);
		}
		if (err)
			return throw_errno(env, "attach: updating the pinned link", err);
	} else if (attach_tcx_pinned(env, prog, ifindex, egress, pin))
		return NULL;
	napi_value out;
	napi_get_boolean(env, adopted, &out);
	return out;
}

/* mapFd(handle, name) -> fd owned by the object */
static napi_value map_fd(napi_env env, napi_callback_info info)
{
	napi_value argv[2];
	char name[256];
	if (get_args(env, info, 2, argv))
		return NULL;
	struct bpf_object *obj = object_arg(env, argv[0]);
	if (!obj || get_string(env, argv[1], name, sizeof(name)))
		return NULL;
	struct bpf_map *map = bpf_object__find_map_by_name(obj, name);
	if (!map)
		return throw_errno(env, "mapFd: no such map", ENOENT);
	return make_int(env, bpf_map__fd(map));
}

static int buffer_arg(napi_env env, napi_value v, void **data, size_t *len)
{
	if (napi_get_buffer_info(env, v, data, len) != napi_ok) {
		napi_throw_type_error(env, NULL, "want a Buffer");
		return -1;
	}
	return 0;
}

static int fd_arg(napi_env env, napi_value v, int *fd)
{
	return napi_get_value_int32(env, v, fd) == napi_ok ? 0 : -1;
}

/* mapUpdate(fd, key, value) */
static napi_value map_update(napi_env env, napi_callback_info info)
{
	napi_value argv[3];
	void *k, *v;
	size_t kl, vl;
	int fd;
	if (get_args(env, info, 3, argv) || fd_arg(env, argv[0], &fd) || buffer_arg(env, argv[1], &k, &kl) || buffer_arg(env, argv[2], &v, &vl))
		return NULL;
	if (bpf_map_update_elem(fd, k, v, BPF_ANY))
		return throw_errno(env, "mapUpdate", errno);
	return NULL;
}

/* mapDelete(fd, key) -> deleted */
static napi_value map_delete(napi_env env, napi_callback_info info)
{
	napi_value argv[2], out;
	void *k;
	size_t kl;
	int fd;
	if (get_args(env, info, 2, argv) || fd_arg(env, argv[0], &fd) || buffer_arg(env, argv[1], &k, &kl))
		return NULL;
	int rc = bpf_map_delete_elem(fd, k);
	if (rc && errno != ENOENT)
		return throw_errno(env, "mapDelete", errno);
	napi_get_boolean(env, rc == 0, &out);
	return out;
}

/* mapLookup(fd, key, valueSize) -> Buffer | null */
static napi_value map_lookup(napi_env env, napi_callback_info info)
{
	napi_value argv[3], out;
	void *k, *v;
	size_t kl;
	int fd;
	int32_t vsize;
	if (get_args(env, info, 3, argv) || fd_arg(env, argv[0], &fd) || buffer_arg(env, argv[1], &k, &kl) || napi_get_value_int32(env, argv[2], &vsize) != napi_ok)
		return NULL;
	napi_create_buffer(env, vsize, &v, &out);
	if (bpf_map_lookup_elem(fd, k, v)) {
		if (errno == ENOENT) {
			napi_get_null(env, &out);
			return out;
		}
		return throw_errno(env, "mapLookup", errno);
	}
	return out;
}

/* mapKeys(fd, keySize) -> Buffer with every key, back to back */
static napi_value map_keys(napi_env env, napi_callback_info info)
{
	napi_value argv[2], out;
	int fd;
	int32_t ks;
	if (get_args(env, info, 2, argv) || fd_arg(env, argv[0], &fd) || napi_get_value_int32(env, argv[1], &ks) != napi_ok)
		return NULL;
	size_t cap = 1024, n = 0;
	char *keys = malloc(cap * ks);
	char *prev = NULL;
	while (keys) {
		if (n == cap) {
			char *grown = realloc(keys, (cap *= 2) * ks);
			if (!grown)
				break;
			keys = grown;
		}
		prev = n ? keys + (n - 1) * ks : NULL;
		if (bpf_map_get_next_key(fd, prev, keys + n * ks))
			break;
		n++;
	}
	if (!keys)
		return throw_errno(env, "mapKeys", ENOMEM);
	void *data;
	napi_create_buffer_copy(env, n * ks, keys, &data, &out);
	free(keys);
	return out;
}

/*
 * mapUpdateBatch(fd, keys, values, count) -> count. One syscall for many
 * entries where the kernel supports it, one per entry where it does not. The
 * kernel writes a batch in order and stops at the first entry it refuses (a
 * full map, say); the error thrown then carries `written`, how many entries
 * from the start are in the map, so the caller can record exactly those.
 */
static napi_value map_update_batch(napi_env env, napi_callback_info info)
{
	napi_value argv[4];
	void *k, *v;
	size_t kl, vl;
	int fd;
	uint32_t count;
	if (get_args(env, info, 4, argv) || fd_arg(env, argv[0], &fd) || buffer_arg(env, argv[1], &k, &kl) || buffer_arg(env, argv[2], &v, &vl) ||
	    napi_get_value_uint32(env, argv[3], &count) != napi_ok)
		return NULL;
	if (count == 0)
		return make_int(env, 0);
	__u32 done = count;
	LIBBPF_OPTS(bpf_map_batch_opts, opts, .elem_flags = BPF_ANY);
	if (bpf_map_update_batch(fd, k, v, &done, &opts) == 0)
		return make_int(env, done);
	/* An unsupported batch writes nothing; a refused entry ends it early. Go on one by one from there. */
	if (done > count)
		done = 0;
	size_t ks = kl / count, vs = vl / count;
	for (uint32_t i = done; i < count; i++)
		if (bpf_map_update_elem(fd, (char *)k + i * ks, (char *)v + i * vs, BPF_ANY)) {
			int err = errno;
			napi_value error, written;
			throw_errno(env, "mapUpdateBatch", err);
			napi_get_and_clear_last_exception(env, &error);
			napi_create_uint32(env, i, &written);
			napi_set_named_property(env, error, "written", written);
			napi_throw(env, error);
			return NULL;
		}
	return make_int(env, count);
}

/* objGet(pinPath) -> fd of a pinned map, or -1 when not pinned */
static napi_value obj_get(napi_env env, napi_callback_info info)
{
	napi_value argv[1];
	char path[4096];
	if (get_args(env, info, 1, argv) || get_string(env, argv[0], path, sizeof(path)))
		return NULL;
	int fd = bpf_obj_get(path);
	if (fd < 0 && errno != ENOENT)
		return throw_errno(env, "objGet", errno);
	return make_int(env, fd);
}

static napi_value close_fd(napi_env env, napi_callback_info info)
{
	napi_value argv[1];
	int fd;
	if (get_args(env, info, 1, argv) || fd_arg(env, argv[0], &fd))
		return NULL;
	close(fd);
	return NULL;
}

/* linkInfo(pinPath) -> { id, progId } of a pinned link, or null */
static napi_value link_info(napi_env env, napi_callback_info info)
{
	napi_value argv[1], out, v;
	char path[4096];
	if (get_args(env, info, 1, argv) || get_string(env, argv[0], path, sizeof(path)))
		return NULL;
	int fd = bpf_obj_get(path);
	if (fd < 0) {
		napi_get_null(env, &out);
		return out;
	}
	struct bpf_link_info li = {};
	__u32 len = sizeof(li);
	int rc = bpf_obj_get_info_by_fd(fd, &li, &len);
	close(fd);
	if (rc)
		return throw_errno(env, "linkInfo", errno);
	napi_create_object(env, &out);
	napi_create_uint32(env, li.id, &v);
	napi_set_named_property(env, out, "id", v);
	napi_create_uint32(env, li.prog_id, &v);
	napi_set_named_property(env, out, "progId", v);
	return out;
}

/* objPin(fd, path): pins a map (or any BPF object) by fd */
static napi_value obj_pin(napi_env env, napi_callback_info info)
{
	napi_value argv[2];
	char path[4096];
	int fd;
	if (get_args(env, info, 2, argv) || fd_arg(env, argv[0], &fd) || get_string(env, argv[1], path, sizeof(path)))
		return NULL;
	if (bpf_obj_pin(fd, path))
		return throw_errno(env, "objPin", errno);
	return NULL;
}

/* mapInfo(fd) -> { id, type, keySize, valueSize, maxEntries, flags } */
static napi_value map_info(napi_env env, napi_callback_info info)
{
	napi_value argv[1], out, v;
	int fd;
	if (get_args(env, info, 1, argv) || fd_arg(env, argv[0], &fd))
		return NULL;
	struct bpf_map_info mi = {};
	__u32 len = sizeof(mi);
	if (bpf_obj_get_info_by_fd(fd, &mi, &len))
		return throw_errno(env, "mapInfo", errno);
	napi_create_object(env, &out);
	struct {
		const char *name;
		__u32 value;
	} fields[] = {
		{ "id", mi.id }, { "type", mi.type }, { "keySize", mi.key_size },
		{ "valueSize", mi.value_size }, { "maxEntries", mi.max_entries }, { "flags", mi.map_flags },
	};
	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
		napi_create_uint32(env, fields[i].value, &v);
		napi_set_named_property(env, out, fields[i].name, v);
	}
	return out;
}

/*
 * mapCopy(fromFd, toFd, keySize, valueSize) -> entries copied. For carrying a
 * map's contents into its replacement when only its size or flags changed.
 */
static napi_value map_copy(napi_env env, napi_callback_info info)
{
	napi_value argv[4];
	int from, to;
	int32_t ks, vs;
	if (get_args(env, info, 4, argv) || fd_arg(env, argv[0], &from) || fd_arg(env, argv[1], &to) ||
	    napi_get_value_int32(env, argv[2], &ks) != napi_ok || napi_get_value_int32(env, argv[3], &vs) != napi_ok)
		return NULL;
	char *key = malloc(ks), *next = malloc(ks), *value = malloc(vs);
	int64_t n = 0;
	int err = 0;
	if (!key || !next || !value)
		err = ENOMEM;
	/* A key deleted under the walk restarts it from the top: bound it. */
	struct bpf_map_info mi = {};
	__u32 len = sizeof(mi);
	uint64_t steps = bpf_obj_get_info_by_fd(from, &mi, &len) ? 0 : 2ULL * mi.max_entries + 1;
	for (char *prev = NULL; !err && steps-- && bpf_map_get_next_key(from, prev, next) == 0; prev = key) {
		memcpy(key, next, ks);
		if (bpf_map_lookup_elem(from, key, value))
			continue; /* gone since (an LRU evicted it) */
		if (bpf_map_update_elem(to, key, value, BPF_ANY))
			err = errno;
		else
			n++;
	}
	free(key);
	free(next);
	free(value);
	if (err)
		return throw_errno(env, "mapCopy", err);
	return make_int(env, n);
}

/*
 * linkDetach(pinPath) -> whether a link was detached. Detaching, rather than
 * only unpinning, takes the program off its hook even while some other
 * process still holds the link open.
 */
static napi_value link_detach(napi_env env, napi_callback_info info)
{
	napi_value argv[1], out;
	char path[4096], fdpath[64], kind[64] = "";
	if (get_args(env, info, 1, argv) || get_string(env, argv[0], path, sizeof(path)))
		return NULL;
	int fd = bpf_obj_get(path);
	if (fd < 0) {
		if (errno != ENOENT)
			return throw_errno(env, "linkDetach", errno);
		napi_get_boolean(env, false, &out);
		return out;
	}
	snprintf(fdpath, sizeof(fdpath), "/proc/self/fd/%d", fd);
	ssize_t len = readlink(fdpath, kind, sizeof(kind) - 1);
	bool is_link = len > 0 && (strcmp(kind, "anon_inode:bpf-link") == 0 || strcmp(kind, "anon_inode:bpf_link") == 0);
	int rc = is_link ? bpf_link_detach(fd) : 0;
	int err = errno;
	close(fd);
	/* A link whose target is already gone (its cgroup removed) has nothing left to detach. */
	if (rc && err != ENOLINK)
		return throw_errno(env, "linkDetach", err);
	napi_get_boolean(env, is_link && rc == 0, &out);
	return out;
}

/* mountBpffs(path): mounts a BPF filesystem at path */
static napi_value mount_bpffs(napi_env env, napi_callback_info info)
{
	napi_value argv[1];
	char path[4096];
	if (get_args(env, info, 1, argv) || get_string(env, argv[0], path, sizeof(path)))
		return NULL;
	if (mount("bpf", path, "bpf", 0, "mode=0700"))
		return throw_errno(env, "mount -t bpf", errno);
	return NULL;
}

/*
 * Ring buffer consumers. libbpf's ring_buffer gathers the rings into one epoll
 * set; its fd sits on the libuv loop, so records are read when the kernel says
 * there are some, on the JS thread, with no thread of our own. Each wake-up
 * drains every ring and hands JS one Buffer of records, each framed as
 * u32 length, u32 ring index (the position of its pin in ringOpen's list),
 * the record, padding to 8 bytes.
 */
#define MAX_RINGS 16
#define MAX_RING_MAPS 8

struct ring_src {
	struct ring *ring;
	uint32_t index;
};

struct ring {
	struct ring_buffer *rb;
	uv_poll_t poll;
	napi_env env;
	napi_ref cb;
	napi_async_context actx;
	int fds[MAX_RING_MAPS];
	struct ring_src srcs[MAX_RING_MAPS];
	int nfds;
	char *batch;
	size_t len, cap;
	int slot;
};
static struct ring *rings[MAX_RINGS];

static int ring_sample(void *ctx, void *data, size_t size)
{
	struct ring_src *src = ctx;
	struct ring *r = src->ring;
	size_t need = 8 + ((size + 7) & ~(size_t)7);
	if (r->len + need > r->cap) {
		size_t cap = r->cap ? r->cap : 1 << 16;
		while (cap < r->len + need)
			cap *= 2;
		char *grown = realloc(r->batch, cap);
		if (!grown)
			return -ENOMEM;
		r->batch = grown;
		r->cap = cap;
	}
	uint32_t head[2] = { (uint32_t)size, src->index };
	memcpy(r->batch + r->len, head, 8);
	memcpy(r->batch + r->len + 8, data, size);
	memset(r->batch + r->len + 8 + size, 0, need - 8 - size);
	r->len += need;
	return 0;
}

/* Drains the rings into r->batch; returns the Buffer (empty when nothing came), or NULL after throwing. */
static napi_value ring_drain(napi_env env, struct ring *r)
{
	napi_value out;
	void *data;
	r->len = 0;
	int n = ring_buffer__consume(r->rb);
	if (n < 0)
		return throw_errno(env, "ring consume", n);
	napi_create_buffer_copy(env, r->len, r->batch, &data, &out);
	r->len = 0;
	/* A flood can grow the batch to a ring's worth; don't keep that much around. */
	if (r->cap > (1 << 22)) {
		free(r->batch);
		r->batch = NULL;
		r->cap = 0;
	}
	return out;
}

static void ring_readable(uv_poll_t *handle, int status, int events)
{
	struct ring *r = handle->data;
	napi_env env = r->env;
	napi_handle_scope scope;
	napi_open_handle_scope(env, &scope);
	napi_value batch = ring_drain(env, r), cb, recv, result;
	size_t len = 0;
	if (batch && napi_get_buffer_info(env, batch, NULL, &len) == napi_ok && len > 0 && napi_get_reference_value(env, r->cb, &cb) == napi_ok) {
		/* make_callback wants an object for `this`. */
		napi_get_global(env, &recv);
		napi_make_callback(env, r->actx, recv, cb, 1, &batch, &result);
	}
	/* What the callback threw (or the drain) is the process's uncaught exception, as for any event. */
	bool pending = false;
	napi_is_exception_pending(env, &pending);
	if (pending) {
		napi_value err;
		napi_get_and_clear_last_exception(env, &err);
		napi_fatal_exception(env, err);
	}
	napi_close_handle_scope(env, scope);
}

static void ring_free(struct ring *r)
{
	if (r->rb)
		ring_buffer__free(r->rb);
	for (int i = 0; i < r->nfds; i++)
		close(r->fds[i]);
	free(r->batch);
	free(r);
}

static void ring_closed(uv_handle_t *handle)
{
	ring_free(handle->data);
}

static struct ring *ring_arg(napi_env env, napi_value v)
{
	int32_t h;
	if (napi_get_value_int32(env, v, &h) != napi_ok || h < 0 || h >= MAX_RINGS || !rings[h]) {
		napi_throw_error(env, NULL, "not an open ring handle");
		return NULL;
	}
	return rings[h];
}

/* ringOpen(pinPaths, callback(batch)) -> handle. Rings not pinned fail it, naming the path. */
static napi_value ring_open(napi_env env, napi_callback_info info)
{
	napi_value argv[2], name;
	uint32_t n;
	bool is_array;
	if (get_args(env, info, 2, argv))
		return NULL;
	if (napi_is_array(env, argv[0], &is_array) != napi_ok || !is_array || napi_get_array_length(env, argv[0], &n) != napi_ok || n == 0 || n > MAX_RING_MAPS) {
		napi_throw_type_error(env, NULL, "want 1 to 8 pin paths");
		return NULL;
	}
	int slot = -1;
	for (int i = 0; i < MAX_RINGS; i++)
		if (!rings[i]) {
			slot = i;
			break;
		}
	if (slot < 0)
		return throw_errno(env, "ringOpen: too many open rings", EMFILE);
	struct ring *r = calloc(1, sizeof(*r));
	if (!r)
		return throw_errno(env, "ringOpen", ENOMEM);
	r->env = env;
	r->slot = slot;
	for (uint32_t i = 0; i < n; i++) {
		char path[4096], msg[200];
		napi_value p;
		napi_get_element(env, argv[0], i, &p);
		if (get_string(env, p, path, sizeof(path))) {
			ring_free(r);
			napi_throw_type_error(env, NULL, "a pin path is not a string");
			return NULL;
		}
		int fd = bpf_obj_get(path);
		if (fd < 0) {
			int err = errno;
			ring_free(r);
			snprintf(msg, sizeof(msg), "ringOpen: %.150s", path);
			return throw_errno(env, msg, err);
		}
		r->fds[r->nfds] = fd;
		r->srcs[r->nfds] = (struct ring_src){ .ring = r, .index = i };
		r->nfds++;
		int err = 0;
		if (i == 0) {
			r->rb = ring_buffer__new(fd, ring_sample, &r->srcs[0], NULL);
			if (!r->rb)
				err = errno;
		} else
			err = -ring_buffer__add(r->rb, fd, ring_sample, &r->srcs[i]);
		if (err) {
			ring_free(r);
			snprintf(msg, sizeof(msg), "ringOpen: %.150s is not a ring buffer", path);
			return throw_errno(env, msg, err);
		}
	}
	uv_loop_t *loop;
	if (napi_get_uv_event_loop(env, &loop) != napi_ok || uv_poll_init(loop, &r->poll, ring_buffer__epoll_fd(r->rb))) {
		ring_free(r);
		return throw_errno(env, "ringOpen: uv_poll_init", EINVAL);
	}
	r->poll.data = r;
	napi_create_reference(env, argv[1], 1, &r->cb);
	napi_create_string_utf8(env, "sluice:ring", NAPI_AUTO_LENGTH, &name);
	napi_async_init(env, NULL, name, &r->actx);
	uv_poll_start(&r->poll, UV_READABLE, ring_readable);
	rings[slot] = r;
	return make_int(env, slot);
}

/* ringConsume(handle) -> Buffer: what the rings hold now, framed as for the callback, without waiting. */
static napi_value ring_consume(napi_env env, napi_callback_info info)
{
	napi_value argv[1];
	if (get_args(env, info, 1, argv))
		return NULL;
	struct ring *r = ring_arg(env, argv[0]);
	return r ? ring_drain(env, r) : NULL;
}

/* ringClose(handle): stops reading; the fds go once libuv lets go of the poll handle. */
static napi_value ring_close(napi_env env, napi_callback_info info)
{
	napi_value argv[1];
	if (get_args(env, info, 1, argv))
		return NULL;
	struct ring *r = ring_arg(env, argv[0]);
	if (!r)
		return NULL;
	rings[r->slot] = NULL;
	uv_poll_stop(&r->poll);
	napi_delete_reference(env, r->cb);
	napi_async_destroy(env, r->actx);
	uv_close((uv_handle_t *)&r->poll, ring_closed);
	return NULL;
}

static napi_value init(napi_env env, napi_value exports)
{
	libbpf_set_print(libbpf_quiet);
	libbpf_set_strict_mode(LIBBPF_STRICT_ALL);
	struct {
		const char *name;
		napi_callback fn;
	} fns[] = {
		{ "openObject", open_object }, { "closeObject", close_object }, { "attachCgroup", attach_cgroup_js },
		{ "attachTcx", attach_tcx_js }, { "mapFd", map_fd }, { "mapUpdate", map_update },
		{ "mapDelete", map_delete }, { "mapLookup", map_lookup }, { "mapKeys", map_keys },
		{ "mapUpdateBatch", map_update_batch }, { "objGet", obj_get }, { "closeFd", close_fd },
		{ "linkInfo", link_info }, { "replacedMaps", replaced_maps }, { "objPin", obj_pin },
		{ "mapInfo", map_info }, { "mapCopy", map_copy }, { "linkDetach", link_detach },
		{ "mountBpffs", mount_bpffs }, { "ringOpen", ring_open }, { "ringConsume", ring_consume },
		{ "ringClose", ring_close },
	};
	for (size_t i = 0; i < sizeof(fns) / sizeof(fns[0]); i++) {
		napi_value f;
		napi_create_function(env, fns[i].name, NAPI_AUTO_LENGTH, fns[i].fn, NULL, &f);
		napi_set_named_property(env, exports, fns[i].name, f);
	}
	return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
