/*
 * CPU feature detection: CPUID says what the processor implements, XGETBV says
 * whether the OS saves the wider register state on a context switch.  An
 * AVX-512 kernel is safe only when both agree (a VM or an old kernel may hide
 * the ZMM state even on a CPU that has the instructions).
 */
#include <string.h>

#include "jv_kernels.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>

static unsigned long long jv_xgetbv(unsigned int index)
{
    unsigned int eax, edx;
    /* Raw opcode-free asm: _xgetbv would need -mxsave on the whole file. */
    __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(index));
    return ((unsigned long long)edx << 32) | eax;
}

void jv_detect_cpu(jv_cpu_features *f)
{
    unsigned int eax = 0, ebx = 0, ecx = 0, edx = 0, max_leaf;

    memset(f, 0, sizeof(*f));
    max_leaf = __get_cpuid_max(0, NULL);
    if (max_leaf < 1)
        return;
    __cpuid(1, eax, ebx, ecx, edx);
    f->sse4_2 = (ecx >> 20) & 1;
    f->fma = (ecx >> 12) & 1;
    f->f16c = (ecx >> 29) & 1;
    f->avx = (ecx >> 28) & 1;
    if ((ecx >> 27) & 1) { /* OSXSAVE: XGETBV is usable */
        unsigned long long xcr0 = jv_xgetbv(0);
        /* bits 1, 2: SSE and AVX (YMM) state */
        f->os_avx = (xcr0 & 0x6) == 0x6;
        /* bits 5, 6, 7: opmask, ZMM0-15 upper halves, ZMM16-31 */
        f->os_avx512 = f->os_avx && (xcr0 & 0xe0) == 0xe0;
    }
    if (max_leaf >= 7) {
        __cpuid_count(7, 0, eax, ebx, ecx, edx);
        f->avx2 = (ebx >> 5) & 1;
        f->avx512f = (ebx >> 16) & 1;
        f->avx512dq = (ebx >> 17) & 1;
        f->avx512cd = (ebx >> 28) & 1;
        f->avx512bw = (ebx >> 30) & 1;
        f->avx512vl = (ebx >> 31) & 1;
        f->avx512vnni = (ecx >> 11) & 1;
    }
}

#else

void jv_detect_cpu(jv_cpu_features *f)
{
    memset(f, 0, sizeof(*f));
}

#endif
