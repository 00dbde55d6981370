/* SPDX-License-Identifier: MIT */
/*
 * longbox mount: serve every snapshot as a read-only FUSE file system
 * (layout in cmd/mount/fs.h) until SIGINT/SIGTERM or `fusermount3 -u`.
 */
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <syslog.h>

#include "cmd/common.h"
#include "cmd/mount/fs.h"

static const char help[] =
        "Usage: longbox mount [OPTIONS] MOUNTPOINT\n"
        "\n"
        "Shows every snapshot of the repository as a read-only file system at\n"
        "MOUNTPOINT (an existing, unmounted directory), until interrupted (Ctrl-C,\n"
        "SIGTERM) or unmounted with 'fusermount3 -u MOUNTPOINT' (or umount):\n"
        "\n"
        "  snapshots/<time>_<id>/...          each snapshot's files (time in UTC)\n"
        "  snapshots/<...>/<db>/restore.sql   of a PostgreSQL snapshot: the script\n"
        "                                     'restore SNAP --sql' writes, for psql -f\n"
        "  latest                             -> the newest snapshot\n"
        "  tags/<tag>/, hosts/<host>/         -> the snapshots with that tag, from that host\n"
        "  tables/<db>/<schema>.<table>/<time>_<id>\n"
        "                                     one table's data in every snapshot\n"
        "\n"
        "New snapshots appear without remounting. Reading a file whose data is\n"
        "damaged fails with an I/O error (EIO), never with wrong bytes, and the\n"
        "damaged chunk is named on standard error (in the system log with --daemon).\n"
        "\n"
        "Options:\n"
        "  --daemon             detach once mounted (default: stay in the foreground)\n"
        "  --cache-size MIB     memory for decrypted chunks (default 256)\n"
        "  --allow-other        let other users in (they see what the recorded\n"
        "                       owners and modes allow; needs user_allow_other in\n"
        "                       /etc/fuse.conf unless run as root)\n";

enum {
        OPT_DAEMON = OPT_FIRST_LOCAL,
        OPT_CACHE_SIZE,
        OPT_ALLOW_OTHER,
};

static bool log_to_syslog;

static void log_message(const char *m) {
        if (log_to_syslog)
                syslog(LOG_ERR, "%s", m);
        else
                fprintf(stderr, "longbox mount: %s\n", m);
}

/* 1 if path is a mount point (listed in /proc/self/mountinfo), 0 if not. */
static int is_mount_point(const char *path) {
        FILE *f = fopen("/proc/self/mountinfo", "re");
        if (!f)
                return -errno;
        char *line = NULL;
        size_t cap = 0;
        int found = 0;
        while (!found && getline(&line, &cap, f) > 0) {
                /* id parent major:minor root MOUNTPOINT ... ; octal escapes \040 */
                char *save = NULL, *field = strtok_r(line, " ", &save);
                for (int i = 0; field && i < 4; i++)
                        field = strtok_r(NULL, " ", &save);
                if (!field)
                        continue;
                char mp[PATH_MAX];
                size_t j = 0;
                for (const char *p = field; *p && j + 1 < sizeof mp; p++) {
                        if (p[0] == '\\' && p[1] >= '0' && p[1] <= '3' && p[2] >= '0' && p[2] <= '7' && p[3] >= '0' &&
                            p[3] <= '7') {
                                mp[j++] = (char) ((p[1] - '0') * 64 + (p[2] - '0') * 8 + (p[3] - '0'));
                                p += 3;
                        } else
                                mp[j++] = *p;
                }
                mp[j] = 0;
                found = strcmp(mp, path) == 0;
        }
        free(line);
        fclose(f);
        return found;
}

/* Checks the mount point; returns 0 or an exit code after reporting. */
static int check_mount_point(const char *mp, char **ret_abs) {
        struct stat st;
        if (stat(mp, &st) < 0) {
                int e = errno;
                if (e == ENOENT)
                        return cli_error(CLI_EXIT_ERROR, "Failed to mount at %s: the mount point does not exist; "
                                         "create the directory first (mkdir -p %s)", mp, mp);
                if (e == ENOTCONN)
                        return cli_error(CLI_EXIT_ERROR, "Failed to mount at %s: it is a FUSE mount whose program is "
                                         "gone; unmount it with 'fusermount3 -u %s'", mp, mp);
                return cli_fail(-e, "mount at %s", mp);
        }
        if (!S_ISDIR(st.st_mode))
                return cli_error(CLI_EXIT_ERROR, "Failed to mount at %s: the mount point is not a directory", mp);
        char *abs = realpath(mp, NULL);
        if (!abs)
                return cli_fail(-errno, "resolve the mount point %s", mp);
        int k = is_mount_point(abs);
        if (k > 0) {
                free(abs);
                return cli_error(CLI_EXIT_ERROR, "Failed to mount at %s: the mount point is busy (something is "
                                 "mounted there already); unmount it first (fusermount3 -u %s) or choose another "
                                 "directory", mp, mp);
        }
        if (access("/dev/fuse", R_OK | W_OK) < 0) {
                int e = errno;
                free(abs);
                if (e == ENOENT)
                        return cli_error(CLI_EXIT_ERROR, "Failed to mount at %s: FUSE is not available: /dev/fuse "
                                         "does not exist; load the fuse kernel module (modprobe fuse) and install "
                                         "the fuse3 package", mp);
                return cli_error(CLI_EXIT_ERROR, "Failed to mount at %s: FUSE is not available: cannot open "
                                 "/dev/fuse (%s)", mp, strerror(e));
        }
        *ret_abs = abs;
        return 0;
}

/* --daemon: the parent waits for the child to report its exit code once
 * mounted (or failed), so errors still reach the terminal and $?. */
static int daemon_fd = -1;

static void daemon_report(int code) {
        if (daemon_fd < 0)
                return;
        unsigned char c = (unsigned char) code;
        ssize_t n = write(daemon_fd, &c, 1);
        (void) n;
        close(daemon_fd);
        daemon_fd = -1;
}

static int daemon_start(void) {
        int p[2];
        if (pipe2(p, O_CLOEXEC) < 0)
                return cli_fail(-errno, "start the daemon");
        fflush(NULL);
        pid_t pid = fork();
        if (pid < 0)
                return cli_fail(-errno, "start the daemon");
        if (pid > 0) {
                close(p[1]);
                unsigned char c;
                ssize_t n;
                do
                        n = read(p[0], &c, 1);
                while (n < 0 && errno == EINTR);
                close(p[0]);
                if (n == 1)
                        _exit(c);
                /* The child died without a word. */
                int status;
                if (waitpid(pid, &status, 0) == pid && WIFEXITED(status))
                        _exit(WEXITSTATUS(status) ? WEXITSTATUS(status) : CLI_EXIT_ERROR);
                _exit(CLI_EXIT_ERROR);
        }
        close(p[0]);
        daemon_fd = p[1];
        setsid();
        return 0;
}

static void daemon_detach(void) {
        if (daemon_fd < 0)
                return;
        int fd = open("/dev/null", O_RDWR | O_CLOEXEC);
        if (fd >= 0) {
                dup2(fd, STDIN_FILENO);
                dup2(fd, STDOUT_FILENO);
                dup2(fd, STDERR_FILENO);
                if (fd > STDERR_FILENO)
                        close(fd);
        }
        if (chdir("/") < 0) {
                /* not fatal */
        }
        openlog("longbox", LOG_PID, LOG_DAEMON);
        log_to_syslog = true;
        daemon_report(CLI_EXIT_OK);
}

static int run(const char *mp, bool daemon, bool allow_other, uint64_t cache_bytes) {
        _cleanup_repo_ LbRepo *r = NULL;
        int code = cli_open_repo(CLI_OPEN_INDEX | CLI_OPEN_LOCK_SHARED, &r);
        if (code)
                return code;

        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        LbFsOptions o = {
                .cache_bytes = cache_bytes,
                .readahead_bytes = 16u << 20,
                /* One more read-ahead worker than CPUs: a worker that
                 * waits for the disk (a read not hinted early enough)
                 * leaves its CPU to the others. */
                .workers = (unsigned) LB_MAX(3, LB_MIN(cpus + 1, 8)),
                .refresh_ns = 1000000000,
                .log = log_message,
        };
        LbFs *fs = NULL;
        int k = lb_fs_new(r, &o, &fs);
        if (k < 0)
                return cli_fail(k, "set up the mount");
        k = lb_fs_refresh(fs);
        if (k < 0) {
                lb_fs_free(fs);
                return cli_fail(k, "list the snapshots of %s", cli.repo);
        }

        char opts[128];
        snprintf(opts, sizeof opts, "ro,nodev,nosuid,default_permissions,fsname=longbox,subtype=longbox%s",
                 allow_other ? ",allow_other" : "");
        char arg0[] = "longbox", arg1[] = "-o";
        char *argv[] = { arg0, arg1, opts, NULL };
        struct fuse_args args = FUSE_ARGS_INIT(3, argv);
        struct fuse *f = fuse_new(&args, lb_fs_operations(), sizeof(struct fuse_operations), fs);
        fuse_opt_free_args(&args);
        if (!f) {
                lb_fs_free(fs);
                return cli_error(CLI_EXIT_ERROR, "Failed to mount at %s: libfuse refused the mount options", mp);
        }
        if (fuse_mount(f, mp) != 0) {
                fuse_destroy(f);
                lb_fs_free(fs);
                return cli_error(CLI_EXIT_ERROR, "Failed to mount at %s: the kernel refused the FUSE mount (see the "
                                 "message above); check that the fuse module is loaded and, as a normal user, that "
                                 "fusermount3 is installed", mp);
        }
        struct fuse_session *se = fuse_get_session(f);
        /* libfuse leaves an ignored signal alone, and a shell starts
         * background jobs with SIGINT ignored: SIGINT and SIGTERM always
         * unmount. (SIGHUP stays ignored under nohup.) */
        signal(SIGINT, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
        if (fuse_set_signal_handlers(se) != 0) {
                fuse_unmount(f);
                fuse_destroy(f);
                lb_fs_free(fs);
                return cli_error(CLI_EXIT_ERROR, "Failed to mount at %s: could not install signal handlers", mp);
        }
        cli_info("Mounted repository %s at %s; unmount with Ctrl-C or 'fusermount3 -u %s'\n", cli.repo, mp, mp);
        fflush(stdout);
        if (daemon)
                daemon_detach();

        struct fuse_loop_config *cfg = fuse_loop_cfg_create();
        if (cfg) {
                fuse_loop_cfg_set_max_threads(cfg, 16);
                fuse_loop_cfg_set_idle_threads(cfg, 8);
        }
        k = cfg ? fuse_loop_mt(f, cfg) : -1;
        fuse_loop_cfg_destroy(cfg);
        fuse_remove_signal_handlers(se);
        fuse_unmount(f);
        fuse_destroy(f);
        lb_fs_free(fs);
        if (k < 0)
                return cli_error(CLI_EXIT_ERROR, "Failed to serve the mount at %s (FUSE loop error %d)", mp, k);
        return CLI_EXIT_OK;
}

int cmd_mount(int argc, char **argv) {
        static const struct option options[] = {
                CLI_GLOBAL_OPTIONS,
                { "daemon", no_argument, NULL, OPT_DAEMON },
                { "cache-size", required_argument, NULL, OPT_CACHE_SIZE },
                { "allow-other", no_argument, NULL, OPT_ALLOW_OTHER },
                {},
        };
        bool daemon = false, allow_other = false;
        long long cache_mib = 256;
        cli_getopt_reset();
        int c;
        while ((c = getopt_long(argc, argv, ":" CLI_GLOBAL_SHORT, options, NULL)) >= 0) {
                switch (c) {
                case OPT_DAEMON:
                        daemon = true;
                        break;
                case OPT_ALLOW_OTHER:
                        allow_other = true;
                        break;
                case OPT_CACHE_SIZE:
                        if (cli_parse_int(optarg, 16, 1 << 20, &cache_mib) < 0)
                                return cli_usage_error("--cache-size takes MiB, 16 to 1048576, not '%s'", optarg);
                        break;
                default: {
                        int k = cli_global_option(c, argv, help);
                        if (k >= 0)
                                return k;
                }
                }
        }
        int nargs = argc - optind;
        if (nargs != 1)
                return cli_usage_error("%s", nargs < 1 ? "give a MOUNTPOINT" : "too many arguments");
        const char *mp_arg = argv[optind];
        if (!cli_repo_location())
                return CLI_EXIT_USAGE;

        _cleanup_free_ char *mp = NULL;
        int code = check_mount_point(mp_arg, &mp);
        if (code)
                return code;
        if (daemon && (code = daemon_start()) != 0)
                return code;
        code = run(mp, daemon, allow_other, (uint64_t) cache_mib << 20);
        daemon_report(code);
        return code;
}
