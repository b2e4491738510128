/* Strict-build check, translation unit 1 of 2: the implementation.
   `make strict` compiles this and tu_user.c as C99 and C++11 with gcc and
   clang, -Wall -Wextra -Wpedantic -Werror, and links them: the header must
   build warning-free and define each symbol once. */
#define EFFATTN_IMPLEMENTATION
#include "../effattn.h"

int tu_user_main(void);
int main(void) { return tu_user_main(); }
