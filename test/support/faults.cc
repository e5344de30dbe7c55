#include "test/support/faults.h"

#include <sqlite3.h>

#include <cstring>
#include <mutex>

namespace tendril::test {

bool FaultyMapOps::Hit() {
  const long n = ++count_;
  if (fail_at_ == 0 || n != fail_at_) return false;
  fired_ = true;
  errno = err_;
  return true;
}

int FaultyMapOps::Update(int fd, const void* key, const void* value, uint64_t flags) {
  return Hit() ? -1 : MapOps::Update(fd, key, value, flags);
}

int FaultyMapOps::Delete(int fd, const void* key) { return Hit() ? -1 : MapOps::Delete(fd, key); }

int FaultyMapOps::UpdateBatch(int fd, const void* keys, const void* values, uint32_t* count) {
  if (Hit()) {
    *count = 0;
    return -1;
  }
  return MapOps::UpdateBatch(fd, keys, values, count);
}

int FaultyMapOps::Create(bpf_map_type type, const char* name, uint32_t key_size, uint32_t value_size,
                         uint32_t max_entries, const bpf_map_create_opts* opts) {
  return Hit() ? -1 : MapOps::Create(type, name, key_size, value_size, max_entries, opts);
}

namespace {

// SQLite calls C functions: the VFS's state is the process's.
struct VfsState {
  sqlite3_vfs vfs{};
  sqlite3_vfs* real = nullptr;
  sqlite3_io_methods methods{};
  std::atomic<long> count[2] = {0, 0};
  std::atomic<long> fail_at[2] = {0, 0};
  std::atomic<bool> fired{false};
} g;

// Our file: the real VFS's file right after it.
struct File {
  sqlite3_file base;
  sqlite3_file* real;
};

sqlite3_file* Real(sqlite3_file* f) { return reinterpret_cast<File*>(f)->real; }

bool Hit(FaultyVfs::Op op) {
  const int i = static_cast<int>(op);
  const long n = ++g.count[i];
  if (g.fail_at[i] == 0 || n != g.fail_at[i]) return false;
  g.fired = true;
  return true;
}

int Close(sqlite3_file* f) { return Real(f)->pMethods->xClose(Real(f)); }
int Read(sqlite3_file* f, void* b, int n, sqlite3_int64 o) { return Real(f)->pMethods->xRead(Real(f), b, n, o); }
int Write(sqlite3_file* f, const void* b, int n, sqlite3_int64 o) {
  if (Hit(FaultyVfs::Op::kWrite)) return SQLITE_IOERR_WRITE;
  return Real(f)->pMethods->xWrite(Real(f), b, n, o);
}
int Truncate(sqlite3_file* f, sqlite3_int64 s) { return Real(f)->pMethods->xTruncate(Real(f), s); }
int Sync(sqlite3_file* f, int flags) {
  if (Hit(FaultyVfs::Op::kSync)) return SQLITE_IOERR_FSYNC;
  return Real(f)->pMethods->xSync(Real(f), flags);
}
int FileSize(sqlite3_file* f, sqlite3_int64* s) { return Real(f)->pMethods->xFileSize(Real(f), s); }
int Lock(sqlite3_file* f, int l) { return Real(f)->pMethods->xLock(Real(f), l); }
int Unlock(sqlite3_file* f, int l) { return Real(f)->pMethods->xUnlock(Real(f), l); }
int CheckReserved(sqlite3_file* f, int* r) { return Real(f)->pMethods->xCheckReservedLock(Real(f), r); }
int FileControl(sqlite3_file* f, int op, void* a) { return Real(f)->pMethods->xFileControl(Real(f), op, a); }
int SectorSize(sqlite3_file* f) { return Real(f)->pMethods->xSectorSize(Real(f)); }
int DeviceChar(sqlite3_file* f) { return Real(f)->pMethods->xDeviceCharacteristics(Real(f)); }
int ShmMap(sqlite3_file* f, int r, int sz, int e, void volatile** p) {
  return Real(f)->pMethods->xShmMap(Real(f), r, sz, e, p);
}
int ShmLock(sqlite3_file* f, int o, int n, int fl) { return Real(f)->pMethods->xShmLock(Real(f), o, n, fl); }
void ShmBarrier(sqlite3_file* f) { Real(f)->pMethods->xShmBarrier(Real(f)); }
int ShmUnmap(sqlite3_file* f, int d) { return Real(f)->pMethods->xShmUnmap(Real(f), d); }
int Fetch(sqlite3_file* f, sqlite3_int64 o, int n, void** p) { return Real(f)->pMethods->xFetch(Real(f), o, n, p); }
int Unfetch(sqlite3_file* f, sqlite3_int64 o, void* p) { return Real(f)->pMethods->xUnfetch(Real(f), o, p); }

int Open(sqlite3_vfs*, sqlite3_filename name, sqlite3_file* f, int flags, int* out) {
  File* file = reinterpret_cast<File*>(f);
  file->real = reinterpret_cast<sqlite3_file*>(file + 1);
  file->base.pMethods = nullptr;
  int rc = g.real->xOpen(g.real, name, file->real, flags, out);
  if (file->real->pMethods) {
    g.methods.iVersion = file->real->pMethods->iVersion;
    file->base.pMethods = &g.methods;
  }
  return rc;
}

void Register() {
  g.real = sqlite3_vfs_find(nullptr);
  g.vfs = *g.real;  // the same methods (and pAppData) for all but xOpen
  g.vfs.pNext = nullptr;
  g.vfs.zName = "tnd_faulty";
  g.vfs.szOsFile = static_cast<int>(sizeof(File)) + g.real->szOsFile;
  g.vfs.xOpen = Open;
  g.methods = {3,        Close,    Read,        Write,      Truncate,   Sync,       FileSize,
               Lock,     Unlock,   CheckReserved, FileControl, SectorSize, DeviceChar, ShmMap,
               ShmLock,  ShmBarrier, ShmUnmap,  Fetch,      Unfetch};
  sqlite3_vfs_register(&g.vfs, /*makeDflt=*/0);
}

void Once() {
  static std::once_flag once;
  std::call_once(once, Register);
}

}  // namespace

const char* FaultyVfs::Name() {
  Once();
  return "tnd_faulty";
}

void FaultyVfs::FailNth(Op op, long n) {
  Once();
  for (int i = 0; i < 2; ++i) {
    g.count[i] = 0;
    g.fail_at[i] = 0;
  }
  g.fired = false;
  g.fail_at[static_cast<int>(op)] = n;
}

void FaultyVfs::Disarm() {
  for (int i = 0; i < 2; ++i) g.fail_at[i] = 0;
}

long FaultyVfs::Count(Op op) { return g.count[static_cast<int>(op)]; }
bool FaultyVfs::Fired() { return g.fired; }

}  // namespace tendril::test
