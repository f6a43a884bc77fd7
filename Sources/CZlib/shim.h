// zlib's inflate API, for gunzipping the CLIP BPE merges and fixture files.
#include <zlib.h>
